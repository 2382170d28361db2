// Package storetest is the conformance suite every optin.Store runs: the
// embedded file store and the Redis store pass the same tests, so the
// rest of optinproxy cannot tell them apart. It is imported only by the
// stores' tests.
//
// A store's test calls Run with a Harness:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{Open: ..., Reopen: ...})
//	}
//
// The subtests run one after another, each on a fresh store from Open.
// Changes are built by a real optin.Ledger with a fixed set of purposes
// and a clock that moves one millisecond per reading, so event times are
// distinct and grow in the order the changes are made. The store runs on
// the same clock, which some tests move on by hours.
package storetest

import (
	"testing"
	"time"

	"optinproxy/optin"
)

// Harness is what a store gives the suite.
type Harness struct {
	// Open returns a fresh, empty store whose clock (its Options.Now) is
	// now, opened with the ledger key keys, and registers its own cleanup
	// (t.Cleanup) to close it and remove its data. The suite may close
	// the store itself first, so Close must tolerate a second call.
	Open func(t *testing.T, now func() time.Time, keys *optin.Keys) optin.Store

	// Reopen closes s and opens the same data again with the clock now
	// and the ledger key keys (the same or another), as a restart does,
	// and returns the store or the error of opening it; a returned store
	// is cleaned up like one from Open. s is nil after a failed Reopen:
	// then the data of the test's last store is opened. Nil skips the
	// durability and key tests.
	Reopen func(t *testing.T, s optin.Store, now func() time.Time, keys *optin.Keys) (optin.Store, error)

	// Raw returns every byte the store keeps: on Redis every key with
	// every field, member and element of every type; for a file store its
	// file and whatever it keeps beside it. The suite scans it for
	// personal data. Nil skips that test.
	Raw func(t *testing.T, s optin.Store) []byte

	// Snapshot copies s's data as a backup does, and returns a function
	// that opens the copy (cleaned up like a store from Open) with a
	// ledger key. Nil skips the tests of backups.
	Snapshot func(t *testing.T, s optin.Store) func(keys *optin.Keys) (optin.Store, error)

	// Lose makes s's data vanish while s stays open, as a Redis restarted
	// without persistence or a deleted file does. Nil skips the test of
	// data loss.
	Lose func(t *testing.T, s optin.Store)

	// RoundTrips returns the network round trips s has made so far. Nil
	// for a store without a network (the embedded one): the round-trip
	// budgets are then not checked.
	RoundTrips func(s optin.Store) int64

	// Tamper changes one stored event of subject's main chain (or, with
	// receipt, of its receipt chain) directly in the storage, as an
	// attacker with access to the files or the server would (rewrite its
	// actor, say), so that Verify must name subject. Nil skips the tamper
	// tests.
	Tamper func(t *testing.T, s optin.Store, subject optin.Address, receipt bool)
}

// test is one subtest of the suite.
type test struct {
	name string
	run  func(t *testing.T, h Harness)
}

// tests is the suite, in the order it runs.
var tests = []test{
	{"Ping", testPing},
	{"GrantAndWithdraw", testGrantAndWithdraw},
	{"SubjectNotFound", testSubjectNotFound},
	{"Normalization", testNormalization},
	{"NewestWins", testNewestWins},
	{"Suppressions", testSuppressions},
	{"EventOnlyChange", testEventOnlyChange},
	{"BadAddressFailsBatch", testBadAddressFailsBatch},
	{"CanceledContext", testCanceledContext},
	{"HistoryAndChain", testHistoryAndChain},
	{"VerifyEmpty", testVerifyEmpty},
	{"VerifyNamesTampered", testVerifyNamesTampered},
	{"ConcurrentSameSubject", testConcurrentSameSubject},
	{"ConcurrentManySubjects", testConcurrentManySubjects},
	{"Lookup", testLookup},
	{"ApplyBatch", testApplyBatch},
	{"Delivered", testDelivered},
	{"DeliveredUntil", testDeliveredUntil},
	{"DeliveredReopen", testDeliveredReopen},
	{"DeliveredBatch", testDeliveredBatch},
	{"DeliveredBadInput", testDeliveredBadInput},
	{"DeliveredOnlyApplied", testDeliveredOnlyApplied},
	{"SuppressionPaging", testSuppressionPaging},
	{"EventPaging", testEventPaging},
	{"Reopen", testReopen},
	{"Closed", testClosed},
	{"ReceiptChain", testReceiptChain},
	{"ReceiptOnce", testReceiptOnce},
	{"ReceiptRoundTrips", testReceiptRoundTrips},
	{"PruneReceipts", testPruneReceipts},
	{"UndatedImport", testUndatedImport},
	{"ProofGaps", testProofGaps},
	{"SubjectsPaging", testSubjectsPaging},
	{"RecordFields", testRecordFields},
	{"SweepNotice", testSweepNotice},
	{"SweepExpiry", testSweepExpiry},
	{"SweepRenewalRace", testSweepRenewalRace},
	{"SweepPending", testSweepPending},
	{"SweepNoRetention", testSweepNoRetention},
	{"SweepTwiceAtOnce", testSweepTwiceAtOnce},
	{"NothingPersonalInStorage", testNothingPersonal},
	{"WrongKey", testWrongKey},
	{"RotateUnderLoad", testRotateUnderLoad},
	{"RetiredGenerationBackup", testRetiredBackup},
	{"DataLost", testDataLost},
	{"Lease", testLease},
	{"OutboxItems", testOutboxItems},
	{"OutboxBatch", testOutboxBatch},
	{"OutboxReopen", testOutboxReopen},
	{"OutboxDeliveries", testOutboxDeliveries},
	{"OutboxBadInput", testOutboxBadInput},
	{"PruneOutbox", testPruneOutbox},
	{"PruneStaleTarget", testPruneStaleTarget},
	{"OutboxMarks", testOutboxMarks},
	{"EraseNow", testEraseNow},
	{"EraseUnknown", testEraseUnknown},
	{"ScheduledErasure", testScheduledErasure},
	{"SweepersOnce", testSweepersOnce},
	{"ErasureNotice", testErasureNotice},
	{"ErasureScan", testErasureScan},
	{"ErasureBackup", testErasureBackup},
}

// Run runs the whole suite against the store h opens.
func Run(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is required")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, h) })
	}
}

func testPing(t *testing.T, h Harness) {
	f := openFixture(t, h)
	if err := f.store.Ping(f.ctx); err != nil {
		t.Fatalf("Ping on an open store: %v", err)
	}
}

// roundTrips measures the round trips fn makes, or -1 when the harness
// does not count them.
func roundTrips(h Harness, s optin.Store, fn func()) int64 {
	if h.RoundTrips == nil {
		fn()
		return -1
	}
	before := h.RoundTrips(s)
	fn()
	return h.RoundTrips(s) - before
}
