package notices

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"
)

// Languages the notices are written in.
const (
	Dutch   = "nl"
	English = "en"
)

//go:embed templates
var templateFS embed.FS

// templateSet is one notice in one language: its subject and text body
// (text/template: "subject" and "body") and its HTML body (html/template,
// the shared layout around "content" and "footer").
type templateSet struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// languages holds the built-in templates, by language and kind.
var languages = map[string]map[string]templateSet{}

func init() {
	funcs := htmltemplate.FuncMap{"button": func(link, label string) map[string]string {
		return map[string]string{"Link": link, "Label": label}
	}}
	layout := htmltemplate.Must(htmltemplate.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	for _, lang := range []string{Dutch, English} {
		languages[lang] = map[string]templateSet{}
		for _, kind := range []string{kindConfirm, kindPortal} {
			name := "templates/" + kind + "." + lang
			html := htmltemplate.Must(htmltemplate.Must(layout.Clone()).ParseFS(templateFS, name+".html"))
			text := texttemplate.Must(texttemplate.New(kind).ParseFS(templateFS, name+".txt"))
			languages[lang][kind] = templateSet{text: text, html: html}
		}
	}
}

// htmlView is what the HTML layout sees besides the notice's fields.
type htmlView struct {
	view
	Lang    string
	Subject string
}

// render fills the templates of kind in lang.
func render(kind, lang string, v view) (subject, text, html string, err error) {
	set := languages[lang][kind]
	var s, t, h bytes.Buffer
	if err := set.text.ExecuteTemplate(&s, "subject", v); err != nil {
		return "", "", "", fmt.Errorf("notices: %s subject: %w", kind, err)
	}
	// One line: a description with a line break must not end the header.
	subject = strings.Join(strings.Fields(s.String()), " ")
	if err := set.text.ExecuteTemplate(&t, "body", v); err != nil {
		return "", "", "", fmt.Errorf("notices: %s text: %w", kind, err)
	}
	if err := set.html.ExecuteTemplate(&h, "layout", htmlView{view: v, Lang: lang, Subject: subject}); err != nil {
		return "", "", "", fmt.Errorf("notices: %s html: %w", kind, err)
	}
	return subject, t.String(), h.String(), nil
}

var months = map[string][12]string{
	Dutch: {"januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober", "november", "december"},
	English: {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
		"December"},
}

// formatTime writes t as a reader of lang expects it, with its zone, as
// in "9 december 2026 om 14:00 (CET)".
func formatTime(t time.Time, lang string) string {
	at := " at "
	if lang == Dutch {
		at = " om "
	}
	return fmt.Sprintf("%d %s %d%s%s (%s)", t.Day(), months[lang][t.Month()-1], t.Year(), at, t.Format("15:04"), t.Format("MST"))
}
