// Package filestore is the embedded optin.Store: one bbolt file, used when
// no Redis is configured (SPEC §10). One process owns the file at a time
// (bbolt's file lock); within it every method is safe for concurrent use.
//
// # Layout
//
// The file holds five top-level buckets:
//
//	meta          "schema"  -> "1"
//	              "ledger_key" -> 32 random bytes (optin.NewKey), made on
//	              first open and kept: subject ids depend on it
//	subjects      SubjectID -> the subject record, in a small versioned
//	              binary form (codec.go): address, the subject's
//	              key, the head hash, the event count, the consents in
//	              optin.EncodeConsent form each with the sequence of the
//	              event that recorded it, and the suppressions with their
//	              times
//	events        8-byte big-endian global sequence -> JSON of
//	              optin.SealedEvent (address and details sealed with the
//	              subject's key)
//	chains        SubjectID + 8-byte big-endian index within the subject
//	              -> 8-byte global sequence, so a subject's history is a
//	              range scan
//	suppressions  address + 0x00 + reason -> 8-byte Unix nanoseconds when
//	              added: the index Suppressions pages through, in address
//	              order; it mirrors the subject records
//
// SubjectID is optin.SubjectID under the ledger key. Event cursors are the
// global sequence in decimal, suppression cursors the last index key in
// base64; both are opaque to callers.
//
// # Writes
//
// Apply runs one bbolt write transaction per call: each subject of the
// batch is loaded once, optin.SubjectState.Apply runs for each change in
// order, the sealed events are appended, and the records and index are
// written back before the commit, which syncs the file. A batch therefore
// commits entirely or not at all, and Apply returns only once it is on
// disk. Writers take turns (bbolt has one writer at a time); readers run
// beside them on a snapshot. The free-page list is not written on each
// commit but rebuilt when the file is opened.
//
// # Erasure
//
// An erased subject has no key: its events open with Erased set and its
// chain still verifies. bbolt reuses freed pages but does not wipe them,
// so a destroyed key lingers in free pages until they are overwritten or
// the file is compacted.
package filestore
