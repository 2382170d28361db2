package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/prometheus/client_golang/prometheus"

	"optinproxy/config"
	"optinproxy/optin"
	"optinproxy/unsubscribe"
)

// personalizer makes each recipient's copy of marketing mail: a token of
// its own in the List-Unsubscribe headers and in the footer.
type personalizer struct {
	tokens  *unsubscribe.Tokens
	base    string // http.public_url without its trailing slash
	host    string // http.public_url's host, for the List-Ids
	mailto  string // unsubscribe.mailto_domain
	lang    string
	skipped prometheus.Counter
	// footers are what a reload may change; a copy loads them once.
	footers atomic.Pointer[footers]
}

// footers are the footer templates, whether footers are put in, and the
// List-Id of each purpose, made once per configuration.
type footers struct {
	on        bool
	templates *unsubscribe.Templates
	listIDs   map[string]string
}

func newPersonalizer(cfg *config.Config, tokens *unsubscribe.Tokens, reg prometheus.Registerer) (*personalizer, error) {
	u, err := url.Parse(cfg.HTTP.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("http.public_url: %w", err)
	}
	p := &personalizer{tokens: tokens, base: strings.TrimRight(cfg.HTTP.PublicURL, "/"), host: u.Hostname(),
		mailto: cfg.Unsubscribe.MailtoDomain, lang: cfg.Unsubscribe.Language,
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "optinproxy_unsubscribe_parts_skipped_total",
			Help: "Text parts of marketing copies that got no unsubscribe link because they could not be read (broken MIME, unknown charset); the List-Unsubscribe headers were still added.",
		})}
	f, err := p.footersOf(cfg)
	if err != nil {
		return nil, err
	}
	p.footers.Store(f)
	if err := reg.Register(p.skipped); err != nil {
		return nil, err
	}
	return p, nil
}

// footersOf makes the footers of cfg; a reload puts them in force with
// p.footers.Store.
func (p *personalizer) footersOf(cfg *config.Config) (*footers, error) {
	over := map[string]unsubscribe.Footer{}
	for lang, t := range cfg.Unsubscribe.Templates {
		over[lang] = unsubscribe.Footer{Text: t.Text, HTML: t.HTML}
	}
	templates, err := unsubscribe.NewTemplates(over)
	if err != nil {
		return nil, fmt.Errorf("unsubscribe.templates: %w", err)
	}
	listIDs := map[string]string{}
	for name, pur := range purposes(cfg) {
		listIDs[name] = unsubscribe.ListID(name, pur.Description, p.host)
	}
	return &footers{on: cfg.Unsubscribe.Footer, templates: templates, listIDs: listIDs}, nil
}

// copy is a smtpproxy.Personalize.
func (p *personalizer) copy(purpose optin.Purpose, to optin.Address, message string, h textproto.Header, body []byte) (io.WriterTo, error) {
	token := p.tokens.Issue(unsubscribe.Claim{Subject: to, Purpose: purpose.Name, Message: message, Issued: time.Now()})
	f := p.footers.Load()
	c := unsubscribe.Copy{URL: p.base + "/u/" + token, ListID: f.listIDs[purpose.Name],
		Lang: p.lang, Footer: f.on, Templates: f.templates}
	if p.mailto != "" {
		c.Mailto = "unsubscribe+" + token + "@" + p.mailto
	}
	return &personalCopy{p: p, h: h, body: body, c: c}, nil
}

// personalCopy is written as it is sent, each time from the shared body.
type personalCopy struct {
	p       *personalizer
	h       textproto.Header
	body    []byte
	c       unsubscribe.Copy
	counted bool
}

func (pc *personalCopy) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	out, err := unsubscribe.WriteCopy(cw, pc.h.Copy(), pc.body, pc.c)
	if !pc.counted && out.Skipped > 0 {
		pc.p.skipped.Add(float64(out.Skipped))
	}
	pc.counted = true
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
