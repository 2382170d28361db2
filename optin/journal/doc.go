// Package journal keeps the receipts the store could not take, so that
// receipts are never lost: when the store fails after the upstream took
// the message, they wait in a local journal (synced to disk) and are
// written when the store is back.
//
// A Journal sits between the relay and the store and is handed to the
// relay as its ledger: Lookup and Apply, as the store has them. Apply
// passes to the store while the journal is empty; when the store fails
// (for any reason but a bad change), the changes go to the journal file,
// and Apply answers as if they were applied once the file is synced.
// While the journal holds anything, new changes go after it, in order,
// and Lookup fails closed (optin.ErrUnavailable) unless a drain empties
// it first: the journaled changes hold delivered marks, and deciding a
// retried message before they are in the store could deliver a copy
// twice. Drain writes the journal to the store in order and truncates
// it; Run drains in the background while the store is down; cmd drains a
// journal left from before at start.
//
// # Nothing lost, nothing twice
//
// A journaled change's outcome at the store is unknown: the write may
// have happened before the error. Every change is therefore replayed with
// optin.Change.Once, so that the store skips it when its event is in the
// subject's chain; Apply gives every change its event time and id before
// the first try (as optin.Receipt.Change does for receipts), so a replay
// is recognized. Once also makes a crash at any point of a drain safe:
// what was applied before the crash is skipped when the journal, which is
// truncated only after everything in it was applied, is drained again.
//
// # The file
//
// The journal is one file (Options.Path, mode 0600, its directory created
// 0700), locked against a second process, a sequence of frames:
//
//	offset  size  field
//	0       4     magic "OPJ1"
//	4       4     body length n, big-endian, at most maxBody
//	8       4     the number of changes in the frame, big-endian, at least 1
//	12      4     CRC-32C (Castagnoli) of bytes 0 to 11
//	16      n     body: a 12-byte random nonce, then AES-256-GCM under
//	              Options.Key of the changes (JSON, see wire.go), with
//	              bytes 0 to 11 as associated data; the 16-byte tag last
//
// One Apply makes one frame; concurrent Applys share one write and one
// fsync (group commit). The changes are sealed because they hold
// addresses and message ids: the file is as unreadable as the store
// without the ledger key (the caller derives Options.Key from it).
//
// # Damaged frames
//
// Only a frame whose header checks and whose body opens counts. Anything
// else is a damaged region, which reaches to the next frame that counts
// (or to the end of the file), and is never silently dropped:
//
//   - At the end of the file (a crash in the middle of a write) it is a
//     torn tail. Nothing in it was acknowledged: Apply returns only after
//     the fsync of its frame. Open moves it to the side file, truncates
//     it away and logs an error.
//   - Elsewhere it is corruption of frames that were acknowledged. They
//     cannot be read, and waiting would keep the relay failing closed for
//     good, so the drain moves the region to the side file, logs an error
//     and counts it (SetAside), and goes on with the frames after it.
//   - A journal in which no frame opens, while the headers of two frames
//     or more check one after the other, was made under another key:
//     Open refuses it (optin.ErrBadKey) rather than set everything aside.
//     (A lone frame that does not open is taken for a torn first write.)
//   - A change the store cannot take however long the drain waits is set
//     aside too, alone, so that it does not keep every Lookup failing
//     closed: one the store refuses as bad (optin.ErrBadInput or
//     ErrBadAddress, which Apply checks for before it journals, so this
//     should not happen), or one whose subject's stored data does not
//     decode (optin.ErrCorrupt, which takes repair by hand). The drain
//     finds it by applying the changes of a failing frame one at a time
//     (with Once, so those already applied are not applied twice).
//     Errors of the ledger key (optin.ErrBadKey, ErrKeyGeneration)
//     concern every subject alike: the drain waits for the operator.
//
// The side file is Options.Path with ".damaged" appended: damaged bytes
// as they were, and changes set aside in frames of their own, appended,
// synced, mode 0600; still sealed, so it is as unreadable as the
// journal. A region may appear in it twice when a crash interrupted the
// drain that set it aside.
package journal
