package portal

import "testing"

// The note under a long history counts its older rows as people do, in
// each language: one entry, or N entries.
func TestOlderText(t *testing.T) {
	for lang, want := range map[string][2]string{
		"en": {"The older entry is in the download.", "The 2 older entries are in the download."},
		"nl": {"De oudere regel staat in de download.", "De 2 oudere regels staan in de download."},
	} {
		tx, ok := texts[lang]
		if !ok {
			t.Fatalf("no texts for %s", lang)
		}
		if got := tx.OlderText(1); got != want[0] {
			t.Errorf("%s, 1: %q, want %q", lang, got, want[0])
		}
		if got := tx.OlderText(2); got != want[1] {
			t.Errorf("%s, 2: %q, want %q", lang, got, want[1])
		}
	}
	for lang, tx := range texts {
		if tx.OlderOne == "" {
			t.Errorf("%s has no OlderOne text", lang)
		}
	}
}
