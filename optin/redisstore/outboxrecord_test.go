package redisstore

import (
	"errors"
	"testing"
	"time"

	"optinproxy/optin"
)

// TestDeliveryCodec: a record reads back as written, in its compact form
// and with the text forms of what does not fit it; a damaged one is
// ErrCorrupt.
func TestDeliveryCodec(t *testing.T) {
	created := time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.UTC)
	for _, d := range []optin.OutboxDelivery{
		{EventType: optin.EventConsentGranted, Pos: "1764581400123-7", SubjectID: "fra6eubfyojdgagfp4vjqn6uzm",
			Status: optin.DeliveryPending, Attempts: 0, Created: created, NextAt: created.Add(30 * time.Second)},
		{EventType: "custom.type", Pos: "17", SubjectID: "not-canonical", Status: optin.DeliveryDead, Attempts: 12,
			Created: created, LastAt: created.Add(72 * time.Hour), DoneAt: created.Add(72 * time.Hour), LastError: "HTTP 410"},
		{EventType: optin.EventSuppressionAdded, Status: optin.DeliveryRetired, Attempts: 1,
			LastAt: created, DoneAt: created.Add(-time.Second)}, // no Created: the times stand alone
	} {
		d.Target, d.EventID = "hook", optin.NewEventID(created)
		v := encodeDelivery(&d)
		got, err := decodeDelivery(d.Target, d.EventID, v)
		if err != nil {
			t.Fatalf("decode %+v: %v", d, err)
		}
		if got.EventType != d.EventType || got.Pos != d.Pos || got.SubjectID != d.SubjectID || got.Status != d.Status ||
			got.Attempts != d.Attempts || !got.Created.Equal(d.Created) || !got.NextAt.Equal(d.NextAt) ||
			!got.LastAt.Equal(d.LastAt) || !got.DoneAt.Equal(d.DoneAt) || got.LastError != d.LastError {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, d)
		}
		for _, bad := range []string{"", v[:len(v)-1], v + "x", "q" + v[1:], v[:9] + "\x09" + v[10:]} {
			if _, err := decodeDelivery(d.Target, d.EventID, bad); !errors.Is(err, optin.ErrCorrupt) {
				t.Errorf("decode of a damaged record (%d bytes): %v, want ErrCorrupt", len(bad), err)
			}
		}
	}
}
