package unsubscribe

import (
	"errors"
	"strings"
	"testing"
)

func TestBuiltinFootersAreASCII(t *testing.T) {
	for lang, f := range builtin {
		for _, s := range []string{f.Text, f.HTML} {
			if !isASCII([]byte(s)) || strings.Count(s, Placeholder) != 1 {
				t.Errorf("%s: %q must be ASCII and hold the placeholder once", lang, s)
			}
		}
	}
}

func TestNewTemplates(t *testing.T) {
	tm, err := NewTemplates(map[string]Footer{
		"en": {Text: "Bye: " + Placeholder}, // HTML stays built in
		"de": {HTML: "<a href=\"" + Placeholder + "\">Abmelden</a>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		lang string
		want Footer
	}{
		{"en", Footer{Text: "Bye: " + Placeholder, HTML: builtin["en"].HTML}},
		{"nl", builtin["nl"]},
		{"de", Footer{Text: builtin["en"].Text, HTML: "<a href=\"" + Placeholder + "\">Abmelden</a>"}},
		{"fr", Footer{Text: "Bye: " + Placeholder, HTML: builtin["en"].HTML}}, // unknown: English
	}
	for _, tt := range tests {
		if got := tm.footer(tt.lang); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.lang, got, tt.want)
		}
	}
	var none *Templates
	if none.footer("nl") != builtin["nl"] || none.footer("xx") != builtin["en"] {
		t.Error("nil Templates are not the built-in ones")
	}
}

func TestNewTemplatesRefusesBadOnes(t *testing.T) {
	for _, over := range []map[string]Footer{
		{"nl": {Text: "Afmelden: {{ unsubscribe_url }}"}},
		{"en": {HTML: "<a>no link</a>"}},
		{"nl": {Text: "\xff" + Placeholder}},
		{"nl": {Text: strings.Repeat("x", 801) + "\n" + Placeholder}},
	} {
		if _, err := NewTemplates(over); !errors.Is(err, ErrTemplate) {
			t.Errorf("%q: error %v, want ErrTemplate", over, err)
		}
	}
}

func TestListID(t *testing.T) {
	tests := []struct{ purpose, description, host, want string }{
		{"newsletter", "Our monthly newsletter", "mail.example.com", `"Our monthly newsletter" <newsletter.mail.example.com>`},
		{"newsletter", "", "Mail.Example.COM.", "<newsletter.mail.example.com>"},
		{"Product_News 2", `Say "hi"`, "x.example", `"Say \"hi\"" <product-news-2.x.example>`},
		{"nieuwsbrief", "Één keer per maand", "x.example", "=?utf-8?q?=C3=89=C3=A9n_keer_per_maand?= <nieuwsbrief.x.example>"},
		{"a", "two\r\nlines", "x.example", `"two lines" <a.x.example>`},
		{"---", "", "::1", "<list.invalid>"},    // nothing left of the name; an address literal
		{"n", "", "127.0.0.1", "<n.127.0.0.1>"}, // dot-atom still
		{"n", "", "", "<n.invalid>"},
	}
	for _, tt := range tests {
		got := ListID(tt.purpose, tt.description, tt.host)
		if got != tt.want {
			t.Errorf("ListID(%q, %q, %q) = %q, want %q", tt.purpose, tt.description, tt.host, got, tt.want)
		}
		if !headerSafe(got, "") {
			t.Errorf("%q cannot go into a header", got)
		}
	}
}
