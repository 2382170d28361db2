package storetest

import (
	"context"
	"testing"

	"optinproxy/optin"
)

// Schema1Secrets are personal values the schema 1 fixtures hold in the
// clear, which must be gone from the store (and its files) after the
// migration.
var Schema1Secrets = []string{"jan.jansen@example.com", "piet@example.org", "info@bakkerij.example", "kees@example.net",
	"müller.example", "192.0.2.77", "EvidenceAgent", "Bakkerij newsletter", "spring-sale-evidence"}

// CheckSchema1 checks, through s, what the schema 1 fixtures of both
// stores (optin/filestore/testdata/v1.db, optin/redisstore/testdata/v1.rdb,
// written by the store of commit cbfb03e) hold, after their migration:
// Jan.Jansen@Example.com granted the newsletter with evidence and
// withdrew; piet@example.org granted it and has a hard_bounce
// suppression; jürgen@müller.example granted it; info@bakkerij.example
// and jürgen got a message.relayed receipt with a delivery mark until
// 2099, kees@example.net a message.blocked one.
func CheckSchema1(t *testing.T, s optin.Store) {
	t.Helper()
	ctx := context.Background()
	addr := func(s string) optin.Address { a, _ := optin.ParseAddress(s); return a }
	jan := addr("jan.jansen@example.com")
	v, err := s.Subject(ctx, jan, 10)
	if err != nil {
		t.Fatalf("Subject after the migration: %v", err)
	}
	if len(v.Consents) != 1 || v.Consents[0].Status != optin.StatusWithdrawn || len(v.Events) != 2 ||
		v.Events[0].Subject != jan || optin.EvidenceOf(v.Events[0]) == nil || optin.EvidenceOf(v.Events[0]).IP != "192.0.2.77" {
		t.Errorf("jan after the migration: %+v", v)
	}
	sts, err := s.Lookup(ctx, optin.LookupQuery{Purpose: "newsletter", Message: "mid:<m1@crm.shop.example>",
		Addresses: []optin.Address{addr("piet@example.org"), addr("info@bakkerij.example"), addr("kees@example.net"), addr("jürgen@müller.example")}})
	if err != nil {
		t.Fatal(err)
	}
	if c := sts[0].Consent; c == nil || c.Status != optin.StatusGranted || len(sts[0].Suppressions) != 1 {
		t.Errorf("piet after the migration: %+v", sts[0])
	}
	if !sts[1].Delivered || sts[2].Delivered || sts[3].Consent == nil {
		t.Errorf("marks and consents after the migration: %+v", sts)
	}
	page, err := s.Suppressions(ctx, "", 10)
	if err != nil || len(page.Suppressions) != 1 || page.Suppressions[0].Subject != addr("piet@example.org") {
		t.Errorf("suppressions after the migration: %+v %v", page, err)
	}
	events, err := s.Events(ctx, optin.EventQuery{Limit: 100})
	if err != nil || len(events.Events) != 8 {
		t.Errorf("the log after the migration: %d events, %v", len(events.Events), err)
	}
	for _, e := range events.Events {
		if e.Subject.IsZero() || e.Erased {
			t.Errorf("an event does not open after the migration: %+v", e)
		}
	}
	r, err := s.Verify(ctx)
	if err != nil || r.Subjects != 5 || r.Events != 8 || len(r.Broken) != 0 {
		t.Errorf("Verify after the migration: %+v %v", r, err)
	}
}
