// Package filestore is the embedded optin.Store: one bbolt file, used when
// no Redis is configured (SPEC §10). One process owns the file at a time
// (bbolt's file lock); within it every method is safe for concurrent use.
//
// # Layout
//
// The file holds seven top-level buckets:
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
//	deliveries    SubjectID + the first 16 bytes of SHA-256 of a message
//	              key (optin.Delivery.Message) -> 8-byte big-endian Unix
//	              nanoseconds of its Until: the delivery marks Lookup
//	              reads when asked about a message
//	delivery_expiry
//	              8-byte big-endian Until + the deliveries key -> empty:
//	              the marks in the order they expire, for the purge
//
// SubjectID is optin.SubjectID under the ledger key. Event cursors are the
// global sequence in decimal, suppression cursors the last index key in
// base64; both are opaque to callers.
//
// # Writes
//
// Apply runs one bbolt write transaction per call: each subject of the
// batch is loaded once, optin.SubjectState.Apply runs for each change in
// order, the sealed events are appended, and the records, index and
// delivery marks are written back before the commit, which syncs the
// file. A batch therefore commits entirely or not at all, and Apply
// returns only once it is on disk. Writers take turns (bbolt has one
// writer at a time); readers run beside them on a snapshot. The
// free-page list is not written on each commit but rebuilt when the file
// is opened.
//
// Files written before the delivery marks lack their two buckets; Open
// creates them, and the schema stays "1" (older programs ignore them).
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
// # Erasure
//
// An erased subject has no key: its events open with Erased set and its
// chain still verifies. bbolt reuses freed pages but does not wipe them,
// so a destroyed key lingers in free pages until they are overwritten or
// the file is compacted.
package filestore
