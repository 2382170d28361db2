package unsubscribe

import (
	"errors"
	"fmt"
	"html"
	"strings"
	"unicode/utf8"
)

// Placeholder marks where the unsubscribe link goes, in a footer template
// and in a message body that places the link itself.
const Placeholder = "{{unsubscribe_url}}"

// ErrTemplate means a footer template cannot be used.
var ErrTemplate = errors.New("unsubscribe: bad footer template")

// maxTemplateLine keeps a footer line, link included, well under the 998
// bytes a mail line may hold.
const maxTemplateLine = 800

// Footer is the text added to a copy's body parts in one language: Text to
// text/plain parts, HTML to text/html parts. Each holds Placeholder.
type Footer struct {
	Text string
	HTML string
}

// builtin footers are plain ASCII, so that every charset can carry them:
// the text one is also the fallback when an override cannot be written in
// a part's charset.
var builtin = map[string]Footer{
	"nl": {
		Text: "Wilt u deze e-mails niet meer ontvangen? Meld u af:\n" + Placeholder,
		HTML: `<p style="font-size:12px;color:#555555">Wilt u deze e-mails niet meer ontvangen? ` +
			`<a href="` + Placeholder + `" style="color:#1a4f8b">Afmelden</a></p>`,
	},
	"en": {
		Text: "Don't want these emails any more? Unsubscribe:\n" + Placeholder,
		HTML: `<p style="font-size:12px;color:#555555">Don't want these emails any more? ` +
			`<a href="` + Placeholder + `" style="color:#1a4f8b">Unsubscribe</a></p>`,
	},
}

// fallbackLang is used for a language without footers.
const fallbackLang = "en"

// Templates are the footers by language: the built-in ones, overridden
// where the configuration says so. Safe for concurrent use; nil means the
// built-in ones.
type Templates struct {
	lang map[string]Footer
}

// NewTemplates returns the built-in footers with over applied: a
// non-empty Text or HTML replaces the built-in one of that language. Each
// given template must hold Placeholder and no line longer than 800 bytes;
// otherwise the error wraps ErrTemplate.
func NewTemplates(over map[string]Footer) (*Templates, error) {
	t := &Templates{lang: map[string]Footer{}}
	for l, f := range builtin {
		t.lang[l] = f
	}
	var errs []error
	for l, o := range over {
		f := t.lang[l]
		if o.Text != "" {
			errs = append(errs, checkTemplate(l, "text", o.Text))
			f.Text = o.Text
		}
		if o.HTML != "" {
			errs = append(errs, checkTemplate(l, "html", o.HTML))
			f.HTML = o.HTML
		}
		t.lang[l] = f
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func checkTemplate(lang, kind, s string) error {
	switch {
	case !strings.Contains(s, Placeholder):
		return fmt.Errorf("%w: %s %s lacks %s", ErrTemplate, lang, kind, Placeholder)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s %s is not UTF-8", ErrTemplate, lang, kind)
	}
	for line := range strings.Lines(s) {
		if len(line) > maxTemplateLine {
			return fmt.Errorf("%w: %s %s has a line longer than %d bytes", ErrTemplate, lang, kind, maxTemplateLine)
		}
	}
	return nil
}

// footer returns the footers of lang, else of the fallback language; an
// override of one language without a Text or HTML gets the built-in one.
func (t *Templates) footer(lang string) Footer {
	m := builtin
	if t != nil {
		m = t.lang
	}
	f, ok := m[lang]
	if !ok {
		f = m[fallbackLang]
	}
	b, ok := builtin[lang]
	if !ok {
		b = builtin[fallbackLang]
	}
	if f.Text == "" {
		f.Text = b.Text
	}
	if f.HTML == "" {
		f.HTML = b.HTML
	}
	return f
}

// asciiText is the plain text footer of lang in ASCII, for a part whose
// charset cannot carry the configured one.
func asciiText(lang string) string {
	b, ok := builtin[lang]
	if !ok {
		b = builtin[fallbackLang]
	}
	return b.Text
}

// fill puts the link into a template; in HTML it is escaped.
func fill(tmpl, url string, isHTML bool) string {
	if isHTML {
		url = html.EscapeString(url)
	}
	return strings.ReplaceAll(tmpl, Placeholder, url)
}
