// Package redisstore keeps the consent ledger in Redis (SPEC §10): one
// node, Sentinel or Cluster, shared by any number of optinproxy
// instances. It implements optin.Store and passes optin/storetest.
//
// # Keys
//
// Every key starts with the prefix (Options.Prefix, default "optin:").
// The keys of one subject carry its subject id (optin.SubjectID, 26
// base32 characters) as the hash tag {SID}, so Redis Cluster keeps them
// in one slot and one MULTI can change them together.
//
//	{prefix}meta         hash   lk: the ledger key (32 raw bytes), created
//	                            once with HSETNX and read back by every
//	                            instance; v: the schema version ("1")
//	{prefix}{SID}:s      hash   the subject's current state:
//	                              a          the normalized address
//	                              k          the subject key (32 raw bytes);
//	                                         erasure removes it
//	                              n          the number of events
//	                              c:PURPOSE  the consent record (compact
//	                                         binary, see below)
//	                              x:REASON   a suppression's time (Unix ns)
//	{prefix}{SID}:e      list   the subject's sealed events in chain order
//	                            (compact binary, see below); the last
//	                            one's hash is the chain's head
//	{prefix}{SID}:d:MARK string a delivery mark: a copy of a message went
//	                            to the subject (optin.Delivery). MARK is
//	                            the first 16 bytes of SHA-256 of the
//	                            message key, in hex (32 characters);
//	                            the value is its Until in Unix ns, and
//	                            the key expires then (PXAT)
//	{prefix}events       stream the global feed: one entry per event, with
//	                            fields s (the SID) and i (the event's index
//	                            in the subject's list)
//	{prefix}supp         zset   the SIDs that have suppressions, all with
//	                            score 0, paged by member (ZRANGE BYLEX)
//
// The state hash stays a listpack (Redis's compact encoding) as long as
// it has at most hash-max-listpack-entries fields and no value longer
// than hash-max-listpack-value (64 bytes by default). That is why the key
// is raw and the consent record a compact binary form (about 45 bytes
// where a text form took about 110, which would
// turn the hash into a hashtable of over 600 bytes). The head is not kept
// in the state: Apply reads the list's last event in the same round trip,
// so the two cannot disagree, and the 35 bytes saved keep the listpack of
// a subject with one consent and an address of up to about 45 characters
// in jemalloc's 160-byte class. Such a subject takes about 270 bytes of
// Redis memory with its key and the keyspace's share, its log excluded
// (BenchmarkMemoryPerSubject). An address longer than 64 bytes turns its
// own hash into a hashtable, which costs memory but nothing else.
//
// A consent record is: format byte 1; status and basis, each a small
// code or 0 and the text; the source; updated (Unix ns, zigzag varint);
// granted and expires as tagged deltas from updated; the event id (16
// raw bytes when it is a canonical optin.NewEventID, else the text); and
// the index of its event in the subject's list plus one (0: unknown),
// which lets Subject fetch the evidence with LINDEX.
//
// An event is: format byte 1; id; time (Unix ns); type (a code for the
// known types, else the text); purpose; actor; the sealed personal data;
// prev and hash (32 raw bytes each when in the canonical hex form). The
// subject id is not stored in the event: it is the list's, so an event
// moved to another subject's list fails its hash.
//
// # Writes
//
// Apply works in batches of up to 500 changes. It WATCHes the state keys
// of the batch's subjects and reads their states and last events in one
// pipelined round trip (every append changes the state's n, so watching
// the state covers the list), applies the changes in order in Go
// (optin.SubjectState.Apply), then writes states, events, delivery
// marks, feed entries and the suppression index in one MULTI/EXEC: two
// round trips per 500 changes. When a watched subject changed meanwhile, the batch is
// retried; after a few conflicts it falls back to one transaction per
// subject, each retried with jittered backoff, and optin.ErrConflict is
// returned only when those run out.
//
// On Redis Cluster a transaction cannot span slots, so each subject gets
// its own WATCH/MULTI (several subjects run in parallel), and the feed
// entries and suppression index entries of a batch are written right
// after its subjects' transactions, in one pipeline, in the order of the
// changes. A crash between the two can leave events out of the global
// feed (and a suppression out of the Suppressions listing), never out of
// the subject's chain, which Subject, Events with a subject and Verify
// read. On one node or Sentinel, everything is in the one MULTI.
//
// # Delivery marks
//
// A change's Delivered mark is SET in the subject's MULTI, with the
// change's event, so Cluster keeps it in the subject's slot. Redis
// expires it by itself at its Until (rounded up to the millisecond),
// judged by the server's clock; Lookup also compares the Until in the
// value with the store's clock (Options.Now), so a mark never counts
// past its Until even when the clocks differ. A mark replaces the
// subject's earlier one for the same message. Nothing else reads or
// lists the marks; Verify does not see them.
//
// # Reads
//
// Lookup is one pipelined round trip of HMGET per address (and, when
// asked about a message, a GET of its mark), whatever their number;
// Subject one (two when a consent's recording event is older than the
// recent events asked for). Events pages over the feed (the cursor a
// stream id) or, with a subject, over its list (the cursor an index). Verify SCANs the state keys and checks each list's chain and
// that the state counts as many events as the list holds.
//
// # Errors
//
// Errors that mean Redis cannot be reached now (refused or broken
// connections, timeouts, a server loading its data, a read-only replica
// after a failover, a closed client) wrap optin.ErrUnavailable; data that
// does not decode wraps optin.ErrCorrupt; a missing subject wraps
// optin.ErrNotFound.
package redisstore
