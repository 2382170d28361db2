// Package filestore is the embedded optin.Store: one bbolt file, used when
// no Redis is configured. One process owns the file at a time
// (bbolt's file lock); within it every method is safe for concurrent use.
//
// # What the file holds, and what it does not
//
// Nothing personal can be read from the file, or from a copy of it,
// without the ledger key, which lives in the key file (optin.Keyring),
// never in the store: subjects are named by keyed hashes of their
// addresses, the address is sealed under the subject's own key, which is
// stored only wrapped under a generation of the ledger key, and evidence
// and event details are sealed under the subject key too.
//
// # Layout
//
// The file holds fifteen top-level buckets:
//
//	meta          "schema" -> "2"; "key_check" -> optin.Keyring.Check, so
//	              that another key is refused; "restoring" -> the id of
//	              the copy (optin.Copy) being written into the file, until
//	              it ends
//	subjects      SubjectID -> the subject record, in a small versioned
//	              binary form (codec.go): the sealed address, the wrapped
//	              subject key, the main chain's head and length, the
//	              receipt chain's head, length and pruned stretch (count
//	              and last hash), the consents in optin.EncodeConsent form
//	              each with the sequence of the event that recorded it,
//	              and the suppressions with their times; from record
//	              version 3, where the subject key's events start (a
//	              subject back after an erasure) and when a scheduled
//	              erasure is due
//	events        8-byte big-endian global sequence -> the JSON of
//	              optin.SealedEvent, with "r": true for a receipt
//	chains        SubjectID + 8-byte big-endian index within the subject's
//	              main chain -> 8-byte global sequence
//	receipt_chains
//	              the same for its receipt chain (absolute indexes: pruned
//	              receipts keep theirs)
//	suppressions  SubjectID + 0x00 + reason -> 8-byte Unix nanoseconds
//	              when added: the index Suppressions pages through; it
//	              mirrors the subject records
//	deliveries    SubjectID + the first 16 bytes of SHA-256 of a message
//	              key (optin.Delivery.Message) -> 8-byte big-endian Unix
//	              nanoseconds of its Until: the delivery marks Lookup
//	              reads when asked about a message
//	delivery_expiry
//	              8-byte big-endian Until + the deliveries key -> empty:
//	              the marks in the order they expire, for the purge
//	outbox        8-byte global sequence of an event of a main chain ->
//	              8-byte big-endian Unix nanoseconds when it was queued
//	              (the store's clock), then for an erasure made with
//	              Notify its notice (the address sealed under the ledger
//	              key): what the webhooks and the list sync must still
//	              send; the key is the reference
//	outbox_deliveries
//	              target + 0x00 + event id -> the JSON of
//	              optin.OutboxDelivery (no personal data)
//	outbox_index  'A' + status byte (p, d, r) + 8-byte Created (Unix ns)
//	              + target + 0x00 + event id, and 'T' + target + 0x00 +
//	              status byte + Created + event id -> empty: the records
//	              by status, oldest first, of all targets and of one
//	outbox_cursors
//	              target -> the position it took its last item at
//	outbox_saved  target -> 8-byte big-endian Unix nanoseconds (the
//	              store's clock) of its last SaveDeliveries: its sign of
//	              life, which PruneOutbox reads
//	seen          a dedup mark's key (a hash) -> 8-byte Until (Unix ns)
//	seen_expiry   8-byte Until + key -> empty, for the purge
//	erasures      8-byte big-endian Unix nanoseconds when a scheduled
//	              erasure is due + SubjectID -> empty: what DueErasures
//	              reads; it mirrors the subject records
//
// Event cursors are the global sequence in decimal (with a subject: the
// next index of each chain, "E.R"), suppression and subject cursors the
// last key in base64; all are opaque to callers.
//
// # Writes
//
// Apply runs one bbolt write transaction per call: each subject of the
// batch is loaded once (its key unwrapped), optin.SubjectState.Apply runs
// for each change in order, the sealed events are appended to the chain
// of their kind, and the records, index and delivery marks are written
// back before the commit, which syncs the file. A batch therefore commits
// entirely or not at all, and Apply returns only once it is on disk.
// Writers take turns (bbolt has one writer at a time); readers run beside
// them on a snapshot. The free-page list is not written on each commit
// but rebuilt when the file is opened.
//
// # Delivery marks
//
// A change's Delivered mark is written in the transaction that applies
// the change, replacing the subject's earlier mark for the message.
// Lookup reports a mark only while the store's clock (Options.Now) is
// before its Until. Marks past their Until are deleted by the write
// transactions themselves: at most once a minute, Apply also deletes up
// to 5000 of them, oldest first (again on the next write when it had
// more), so the file holds about one dedup window of marks.
//
// # Outbox
//
// Apply queues every event of a main chain (never a receipt) in the
// transaction that appends it, so it is queued exactly when it is
// recorded. Outbox positions are the events' global sequence in decimal:
// they grow with every write, and an item keeps its position until
// PruneOutbox deletes it. SaveDeliveries writes its records, their index
// entries, the target's cursor and when it saved in one transaction.
// PruneOutbox deletes dead and retired records done before its cut, and
// the items queued before it that every saved cursor has passed, a chunk
// per transaction. A target that has not saved since the cut has not
// worked for the whole retention (it was removed from the configuration,
// say): the transaction that trims the items first deletes its cursor
// and its time, so it holds nothing back and, should it come back,
// starts at the end like a new target. A cursor without a time (written
// before times were kept) gets one then.
// Mark deletes up to 64 expired dedup marks as it writes, PruneOutbox
// the rest.
//
// # Receipts and rotation
//
// PruneReceipts deletes the oldest receipts of every chain, a chunk of
// subjects per write transaction, keeping in each record how many went
// and the last one's hash. Rotate re-wraps the subject keys under the
// ledger key's newest generation the same way. Both run beside the
// relay's writes, in this process: rotate-key, a process of its own,
// needs the server stopped.
//
// # Copies
//
// Dump reads the subjects in id order, a read transaction per batch, each
// event with its global sequence as its Seq. RestoreSubjects writes a
// batch in one write transaction, each event at the Seq the source gave
// it (so Events lists the copy in the source's order) and skips subjects
// whose record exists (a run after an interruption); the events bucket's
// sequence is moved past the highest, so later appends follow the copy.
// EndRestore writes the outbox, the targets' records, cursors and last
// saves, and deletes the mark, in one transaction.
//
// # Data loss
//
// Ping checks that the path still names the file Open found. Once it does
// not (the file was deleted or replaced), what this process writes would
// be lost: Ping, Apply and Lookup fail from then on (optin.ErrDataLost and
// optin.ErrUnavailable: decisions fail closed) until a restart.
//
// # Schema 1
//
// Open migrates a file of schema 1 (which kept the ledger key in meta,
// each subject's key and address in the clear, and the suppression index
// by address) in one write transaction, when opened with a ledger key
// whose identity is that key (LegacyKey reads it); then it copies the
// file into a fresh one, since bbolt keeps freed pages with their old
// content. Events keep their form: their hashes cover it. Schema 1's
// receipts stay in the main chain.
//
// # Erasure
//
// An erasure is one write transaction: the subject.erased event is
// appended, the record loses its consents, its suppressions but erased,
// its wrapped key, its sealed address and its scheduled erasure, and the
// subject's delivery marks are deleted. An erased subject has no key:
// its events open with Erased set and its chains still verify. When it
// comes back (the erased suppression removed), it gets a fresh key, and
// the record's KeyFrom says from which event on that key opens them. bbolt reuses freed pages but does not wipe them, so
// a destroyed key lingers in free pages until they are overwritten or the
// file is compacted; it is wrapped, so a copy of the file cannot use it
// once its generation is retired.
package filestore
