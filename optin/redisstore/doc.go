// Package redisstore keeps the consent ledger in Redis: one
// node, Sentinel or Cluster, shared by any number of optinproxy
// instances. It implements optin.Store and passes optin/storetest.
//
// # What Redis holds, and what it does not
//
// Nothing personal can be read from Redis, or from its RDB and AOF files
// or their backups, without the ledger key, which lives in the key file
// (optin.Keyring), never in Redis. Subjects are named by keyed hashes of
// their addresses under the key's identity secret, so every instance with
// the key file computes the same ids, whatever Redis has lost; the
// address is sealed under the subject's own key, which is stored only
// wrapped under a generation of the ledger key; evidence and event details
// are sealed under the subject key too. What is readable: consent states
// (status, basis, source, times) and suppressions, keyed by pseudonymous
// ids, and the events' types, purposes, actors and times.
//
// # Keys
//
// Every key starts with the prefix (Options.Prefix, default "optin:").
// The keys of one subject carry its subject id (26 base32 characters) as
// the hash tag {SID}, so Redis Cluster keeps them in one slot and one
// script can change them together.
//
//	{prefix}meta         hash   v: the schema version ("2"); kc: the key
//	                            check (optin.Keyring.Check), so that an
//	                            instance with another key refuses to start;
//	                            e: the epoch, a random marker made with the
//	                            hash (see Data loss); g: the key generation
//	                            new subject keys are wrapped under; pf: how
//	                            far pruning went through the feed; mr: the
//	                            id of a copy (optin.Copy) being written
//	                            into the store, until it ends
//	{prefix}{SID}:s      hash   the subject's current state:
//	                              p          the address, sealed (AES-GCM
//	                                         under a key derived from the
//	                                         subject key; 12 bytes longer)
//	                              w          the subject key, wrapped: the
//	                                         generation (uvarint) and the
//	                                         RFC 3394 key wrap (41 bytes)
//	                              c:PURPOSE  the consent record (compact
//	                                         binary, see below)
//	                              x:REASON   a suppression's time (Unix ns)
//	                              ro, rp     receipts pruned from the front
//	                                         of the receipt list, and the
//	                                         last one's hash (16 raw bytes)
//	                              ke         "E.R": where the events the
//	                                         subject key opens start, in
//	                                         the main and the receipt
//	                                         chain, for a subject back
//	                                         after an erasure
//	                              ea         when a scheduled erasure is
//	                                         due, Unix ns
//	{prefix}{SID}:e      list   the main chain: consent, suppression and
//	                            subject events, sealed, in chain order
//	{prefix}{SID}:r      list   the receipt chain: message.relayed and
//	                            message.blocked, sealed, in chain order
//	{prefix}{SID}:d      zset   the subject's delivery marks: members the
//	                            first 8 bytes of the SHA-256 of a message
//	                            key, scores their untils in Unix ms; Redis
//	                            drops the set at the last until
//	{prefix}events       stream the global feed: one entry per write, field
//	                            r holding packed references (the subject
//	                            id's 16 raw bytes, then index*2 plus 1 for
//	                            the receipt chain as a uvarint); schema 1's
//	                            entries (fields s and i) are read too
//	{prefix}supp         zset   the SIDs that have suppressions, all with
//	                            score 0, paged by member (ZRANGE BYLEX)
//	{prefix}erasures     zset   the SIDs with a scheduled erasure, scored
//	                            by when it is due (Unix ms): what
//	                            DueErasures reads
//	{prefix}names        hash   3-byte codes of the purposes and actors
//	                            receipts name (see names.go)
//	{prefix}lease:JOB    string the instance that runs a periodic job
//	{prefix}outbox       stream what the webhooks and the list sync must
//	                            still send: one entry per event of a main
//	                            chain (never a receipt), field o holding
//	                            its packed reference (as in the feed) and
//	                            then when it was queued, Unix ms by the
//	                            store's clock, as a uvarint; an item's
//	                            position is its entry id
//	{prefix}{o:T}:od     hash   target T's delivery records: event id ->
//	                            the record (see below)
//	{prefix}{o:T}:op     zset   T's pending records, :ox its dead ones, :or
//	                            its retired ones: all scored 0, members
//	                            the record's Created (8 bytes, big-endian
//	                            Unix ns) and its event id, so that ZRANGE
//	                            BYLEX lists them oldest first
//	{prefix}{o:T}:oc     string the position T took its last item at
//	{prefix}{o:T}:ol     string when T last saved records or a cursor, Unix
//	                            ms by the store's clock in decimal: its
//	                            sign of life, which PruneOutbox reads
//	{prefix}outbox:targets
//	                     set    the targets that saved records or a cursor
//	                            (a forgotten one stays: a few bytes)
//	{prefix}restore:order
//	                     zset   while a copy is written: each copied
//	                            event's reference and time (Unix ms, a
//	                            uvarint), scored by its place in the
//	                            source's log, from which EndRestore writes
//	                            the feed
//	{prefix}seen:KEY     string an inbound webhook's dedup mark (KEY is a
//	                            hash): its until in Unix ms, which Seen
//	                            compares with the store's clock; Redis
//	                            drops it then (PXAT)
//
// A subject's state stays a listpack (Redis's compact encoding) as long as
// no value is longer than hash-max-listpack-value (64 bytes by default);
// the sealed address is 12 bytes longer than the address, so an address of
// up to 52 bytes keeps it compact. A subject with one consent takes about
// 280 bytes of Redis memory (BenchmarkMemoryPerSubject).
//
// A consent record is: format byte 2; status and basis, each a small code
// or 0 and the text; the source; updated (Unix ns, zigzag varint); granted
// and expires as tagged deltas from updated; the event id (16 raw bytes
// when it is a canonical optin.NewEventID, else the text); the index of
// its event in the main list plus one (0: unknown), which lets Subject
// fetch the evidence with LINDEX; the proof gaps (a byte); and, from
// format 3, the policy version and when its expiry was noticed (a tagged
// delta from updated). Format 1, schema 1's, has no gaps byte; format 2
// ends after the gaps.
//
// An event of the main chain is: format byte 1; id; time (Unix ns); type
// (a code for the known types, else the text); purpose; actor; the sealed
// personal data; prev and hash (32 raw bytes each when in the canonical
// hex form). The subject id is not stored: it is the list's, so an event
// moved to another subject's list fails its hash.
//
// A receipt is: format byte 2; its id (16 raw bytes; its time is the
// id's, to the millisecond); type; purpose and actor, each a 3-byte code
// or the text; the sealed details (optin.SealReceipt: no nonce stored, a
// 12-byte tag); and its hash, 16 raw bytes. Its prev is the hash of the
// entry before it, or rp for the first one left. A receipt takes about
// 175 bytes of Redis memory with its feed reference
// (BenchmarkMemoryPerReceipt).
//
// A delivery record (optin.OutboxDelivery) is: its status byte (p, x or
// r), its Created (8 bytes, as in the index), which the save script
// reads to move it between indexes; format byte 1; the event type (a
// code); the position (its two numbers as uvarints); the subject id (16
// raw bytes); attempts; NextAt, LastAt and DoneAt as differences from
// Created; the last error. A pending record takes about 300 bytes of
// Redis memory with its index member, a retired one the same, an outbox
// item about 41 (BenchmarkMemoryOutbox). A target's keys share the hash
// tag {o:T}, so one script saves its records, moves its cursor and sets
// the time of its last save, also on Cluster.
//
// PruneOutbox reads every target's cursor and last save in one pipeline.
// A target that has not saved since the cut has not worked for the whole
// retention (it was removed from the configuration, say): a script in
// its slot deletes its cursor and time unless it saved since they were
// read, so it holds no item back and, should it come back, starts at the
// end like a new target. A cursor without a time (written before times
// were kept) gets one then (SET NX).
//
// # Writes
//
// Apply works in batches of up to 500 changes. For each subject it needs
// the state and the heads of its chains: receipts for subjects that a
// Lookup just read (the relay's case) are built from what the lookup saw
// (seenCache), anything else from one pipelined read (HGETALL, the last
// entry and length of both lists). The changes are applied in Go
// (optin.SubjectState.Apply) and handed to applyScript, which writes the
// whole batch in one round trip, all or nothing, but only when every
// subject's chains are still where they were read (the last entry's hash,
// the state's existence); else it writes nothing and the batch is read
// and tried again. So the relay's receipts take one round trip per batch,
// and a busy relay shares a batch among many messages (optin.Batcher).
//
// A write whose reply is lost (a read timeout: Redis may have run it) is
// written once and reported as written:
//
//   - go-redis sends a command again when its reply times out
//     (MaxRetries). The script gets, per subject, the chains' lengths as
//     read; when a subject's chain moved and its first new entry is
//     already at that position, byte for byte, the same call ran before
//     and wrote the whole batch (it is all or nothing), so it writes
//     nothing and answers "done", and Apply reports the results it
//     computed, which are the ones stored.
//   - When go-redis gives up too, Apply tries once more (lostTries),
//     reading every event id of the subjects' chains: every change gets
//     its event id before the first try, so a change whose event is
//     there was written by a try of this call, and its result is that
//     try's (Applied, with the event whose hash is stored; on one node
//     its feed and outbox entries came with it, on Cluster they follow
//     as the others' do). The rest are applied as usual.
//   - When that fails too, Apply returns an error wrapping
//     optin.ErrUnavailable, and the batch may or may not be written. A
//     caller that retries must set the events' ids and Once
//     (optin.Change.Once, as a journal's replay does): then a change whose
//     event is in the chain is skipped. A retry without them appends a
//     receipt again (a consent change or a suppression already stored is
//     ignored, as any repeat is).
//
// The same script appends each event of a main chain to the outbox; a
// batch of receipts only adds nothing to it. It also checks that each
// existing subject's wrapped key is still the one read, so that a write
// built on a key an erasure destroyed (or a rotation replaced) since is
// read and made again.
//
// An erasure is one such write: the subject.erased event appended, the
// consent fields, the suppressions but erased, w, p and ea deleted, the
// marks set deleted, and the subject taken out of the erasures index;
// with Notify its outbox entry carries the notice (the address sealed
// under the ledger key) after its time. A subject back after an erasure
// gets a fresh key and ke.
//
// On Redis Cluster a script cannot span slots, so each subject gets its
// own script call (several run in parallel), and the feed entries, the
// suppression index entries and the outbox entries of a batch are
// written right after, in one pipeline. A crash between the two can leave
// events out of the global feed and the outbox (so a webhook would not
// send them; and a suppression out of the Suppressions listing), never
// out of the subject's chain, which Subject, Events with a subject and
// Verify read; and two batches written at once can queue one subject's
// events in the other order than its chain has them; and go-redis
// sending that pipeline again after losing its reply can list a write
// twice in the feed and the outbox (never in a chain). On one node or
// Sentinel, everything is in the one script.
//
// # Delivery marks
//
// A change's Delivered mark is a member of the subject's marks, set in
// the write that applies the change, scored with the Until in Unix ms,
// rounded up; the set expires (PEXPIREAT) at its latest Until, so a
// subject mailed once a week holds no mark most of the time. Lookup reads
// the score (ZSCORE) and compares it with the store's clock (Options.Now).
// A set that has grown past 32 marks (a busy role address) is trimmed of
// the expired ones by the write that adds one.
//
// # Reads
//
// Lookup is one pipelined round trip of HMGET, LINDEX, LLEN and (with a
// message) ZSCORE per address, whatever their number; Subject one (two when a consent's
// recording event is older than the recent events asked for). Events
// pages over the feed (the cursor an entry id and a count of its
// references) or, with a subject, over its two lists merged by time (the
// cursor "E.R"). Verify SCANs the state keys and checks both chains.
//
// # Key rotation
//
// Rotate raises meta g to the ledger key's newest generation and
// re-wraps every subject key that is under another, per SCAN batch, each
// only when still the one read (rewrapScript), beside the writers. An
// instance that meets a wrap or a meta g of a generation its key lacks
// reads its key file again (optin.Keys).
//
// # Copies
//
// Dump numbers the feed's references in order first (some 60 bytes of
// memory per event), then SCANs the subjects and reads each batch in one
// pipeline, then the outbox. RestoreSubjects writes, per subject not
// there yet, its lists, index entries and restore:order members, and its
// state hash last, so a subject with a state hash is whole and a run
// after an interruption skips it. EndRestore writes the feed and the
// outbox anew from restore:order (entry ids from the events' times and
// the items' queue times), the targets' records through SaveDeliveries
// and their cursors and last saves, then deletes the mark and the order.
//
// # Data loss
//
// Ping reads the epoch. When it is gone (Redis lost its data) or another
// (an instance found it gone and made a new one), Ping reports
// optin.ErrDataLost from then on, and the marker is made again so that
// the other instances notice too. Decisions stay fail-closed: a subject
// that is not found gets no marketing.
//
// # Schema 1
//
// Open migrates a store of schema 1 (which kept the ledger key in the meta
// hash, and each subject's key and address in the clear) when opened with
// a ledger key whose identity is that key (LegacyKey reads it): addresses
// sealed, keys wrapped, marks moved into the marks sets, the ledger key
// deleted; then it asks Redis to write its files again (BGSAVE,
// BGREWRITEAOF) so that the old values leave its disk. Events keep their
// form: their hashes cover it. Schema 1's receipts stay in the main chain.
//
// # Errors
//
// Errors that mean Redis cannot be reached now (refused or broken
// connections, timeouts, a server loading its data, a read-only replica
// after a failover, a closed client) wrap optin.ErrUnavailable; data that
// does not decode wraps optin.ErrCorrupt; a missing subject wraps
// optin.ErrNotFound; a key that does not fit optin.ErrBadKey or
// optin.ErrKeyGeneration.
package redisstore
