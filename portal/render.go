package portal

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"

	"optinproxy/unsubscribe"
)

//go:embed templates/portal.html templates/portal.css
var templateFS embed.FS

var (
	pageTemplate = template.Must(template.ParseFS(templateFS, "templates/portal.html"))
	// pageStyle is the unsubscribe pages' style and the portal's own
	// rules, in one <style> element whose hash the CSP allows.
	pageStyle = unsubscribe.Style() + mustRead("templates/portal.css")
	pageCSP   = unsubscribe.PageCSP(pageStyle)
)

// page is what the template shows. Kind picks the body: request, sent,
// portal, erased or problem.
type page struct {
	T     text
	Kind  string
	Title string
	Style template.CSS
	// Lang is "?lang=xx" when the page's language was chosen with the
	// switch, so that its forms and links keep it; else "".
	Lang string

	// The forms: the CSRF token, and where each posts.
	CSRF string
	Base string // /p/TOKEN

	// The request form: a problem with what was typed, and the value.
	Error, Value string
	Sent         string

	// The portal.
	Intro     string
	Notice    string
	View      view
	Formats   []format
	CanErase  bool
	Problem   string
	NewLinkAt string // where to ask for a new link; "" for none
}

// format is one download link.
type format struct{ Href, Label string }

// langQuery keeps an explicit ?lang= for the page's links and forms.
func langQuery(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l != "" {
		if _, ok := texts[l]; ok {
			return "?lang=" + url.QueryEscape(l)
		}
	}
	return ""
}

func (h *Handler) text(r *http.Request) text { return texts[h.langs.Pick(r)] }

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, p page) {
	p.Style = template.CSS(pageStyle)
	p.Lang = langQuery(r)
	var b bytes.Buffer
	if err := pageTemplate.ExecuteTemplate(&b, "page", p); err != nil {
		h.log.Error("portal page", "kind", p.Kind, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	unsubscribe.SetPageHeaders(w.Header(), pageCSP)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// problem answers a page that says what went wrong; with newLink it
// offers to ask for a new link.
func (h *Handler) problem(w http.ResponseWriter, r *http.Request, status int, title, msg string, newLink bool) {
	p := page{T: h.text(r), Kind: "problem", Title: title, Problem: msg}
	if newLink {
		p.NewLinkAt = "/p" + langQuery(r)
	}
	h.render(w, r, status, p)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	t := h.text(r)
	h.problem(w, r, http.StatusNotFound, t.MissingTitle, t.MissingText, true)
}

func mustRead(name string) string {
	b, err := templateFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// table is what the history template shows.
type table struct {
	T       text
	Caption string
	Rows    []row
	Older   int
}

// Table hands the history template its rows with the page's words.
func (p page) Table(caption string, rows []row, older int) table {
	return table{T: p.T, Caption: caption, Rows: rows, Older: older}
}
