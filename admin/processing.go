package admin

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"optinproxy/optin"
)

// Processing is what the record of processing (GDPR art. 30) takes from
// the configuration; cmd fills it. Empty fields are reported as not set.
type Processing struct {
	Controller Controller
	// Store is where the ledger is kept: "redis" or "embedded".
	Store string
	// The retention periods of what is kept besides the consents:
	// policy.receipt_retention, upstream.dedup_window,
	// webhooks.dedup_window, webhooks.outbox.retired_for and
	// policy.pending_expiry.
	ReceiptRetention time.Duration
	DeliveryDedup    time.Duration
	WebhookDedup     time.Duration
	OutboxRetention  time.Duration
	PendingExpiry    time.Duration
	// Processors are those that receive personal data from the proxy.
	Processors []Processor
}

// Controller names the controller of the processing; the operator may
// leave any field empty.
type Controller struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Contact string `json:"contact"`
	DPO     string `json:"dpo"`
}

// Processor is one recipient of personal data: its name, what it gets
// and why, and its host (never a credential).
type Processor struct {
	Name     string `json:"name"`
	Receives string `json:"receives"`
	Host     string `json:"host"`
}

type purposeRecord struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Basis       optin.Basis    `json:"basis"`
	Category    optin.Category `json:"category"`
	// Retention is how long a consent lasts without renewal, "" for as
	// long as it is not withdrawn.
	Retention   string `json:"retention"`
	DoubleOptIn bool   `json:"double_opt_in"`
}

type dataCategory struct {
	Name   string   `json:"name"`
	Fields []string `json:"fields"`
}

type retentionRecord struct {
	What   string `json:"what"`
	Period string `json:"period"`
}

type processingJSON struct {
	Controller     Controller        `json:"controller"`
	Purposes       []purposeRecord   `json:"purposes"`
	DataCategories []dataCategory    `json:"data_categories"`
	Retention      []retentionRecord `json:"retention"`
	Security       []string          `json:"security"`
	Processors     []Processor       `json:"processors"`
	GeneratedAt    time.Time         `json:"generated_at"`
}

// dataCategories are the kinds of personal data the proxy keeps: fixed
// by what the ledger stores.
var dataCategories = []dataCategory{
	{"email address", []string{"the address, normalized; it identifies the data subject"}},
	{"consent records", []string{"purpose", "status", "lawful basis", "source", "granted, updated and expiry times", "privacy-policy version"}},
	{"consent evidence", []string{"time", "IP address", "user agent", "privacy-policy version", "the text the subject saw", "free key/values sent with the consent"}},
	{"message receipts", []string{"Message-ID", "queue id", "purpose", "decision and reason", "time", "the consent event it rested on (never the message body)"}},
	{"suppressions", []string{"reason (unsubscribed from all, hard bounce, complaint, erased, manual)", "time; an erased address only as a keyed hash"}},
	{"audit log", []string{"event type", "time", "actor (API token, SMTP user, webhook, the subject)", "the details of each change"}},
}

// security are the measures the proxy itself takes.
var security = []string{
	"every personal field (the address, evidence, event details, receipts) is sealed (AES-GCM) under a key of its own subject",
	"each subject key is stored only wrapped by the ledger key, which is kept out of the store (a key file or the environment); rotate-key re-wraps them under a new generation and retires old ones",
	"subjects are named in the store by keyed hashes (HMAC of the address under a key derived from the ledger key), so the store holds no address in the clear",
	"erasure destroys the subject key: its history stays verifiable and unreadable, in backups too once the key generation of those backups is retired",
	"each subject's history is a hash chain (SHA-256) that verify checks, so a change to the log is found",
	"the admin API needs a bearer token with a scope (read, write, erase); tokens are compared as SHA-256 hashes in constant time",
	"logs carry no address, only a short hash",
}

// reportProcessing answers the record of processing (GDPR art. 30): the
// controller, the purposes with their basis and retention, the kinds of
// personal data, the retention periods, the security measures and the
// processors. ?format=markdown gives it as a Markdown document.
func (a *API) reportProcessing(w http.ResponseWriter, r *http.Request, _ principal) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "markdown" {
		badRequest(w, "format must be json or markdown")
		return
	}
	rec := a.processingRecord()
	if format == "markdown" {
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		writeMarkdown(w, rec)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (a *API) processingRecord() processingJSON {
	pr := a.opts.Processing
	rec := processingJSON{Controller: pr.Controller, DataCategories: dataCategories, Processors: pr.Processors,
		GeneratedAt: a.opts.Now().UTC().Truncate(time.Second)}
	if rec.Processors == nil {
		rec.Processors = []Processor{}
	}
	for _, p := range a.ledger.Purposes() {
		rec.Purposes = append(rec.Purposes, purposeRecord{Name: p.Name, Description: p.Description, Basis: p.Basis,
			Category: p.Category, Retention: period(p.Retention, "no expiry"), DoubleOptIn: p.DoubleOptIn})
	}
	slices.SortFunc(rec.Purposes, func(x, y purposeRecord) int { return cmp.Compare(x.Name, y.Name) })
	for _, p := range rec.Purposes {
		rec.Retention = append(rec.Retention, retentionRecord{"consents for " + p.Name, p.Retention})
	}
	rec.Retention = append(rec.Retention,
		retentionRecord{"pending double opt-in consents", period(pr.PendingExpiry, "not set")},
		retentionRecord{"message receipts", period(pr.ReceiptRetention, "not set")},
		retentionRecord{"marks of delivered copies (against duplicate delivery)", period(pr.DeliveryDedup, "not set")},
		retentionRecord{"ids of inbound webhook deliveries", period(pr.WebhookDedup, "not set")},
		retentionRecord{"outbound webhook deliveries, once delivered or given up", period(pr.OutboxRetention, "not set")},
		retentionRecord{"consent and suppression history, and the address", "until the subject is erased"},
	)
	rec.Security = slices.Clone(security)
	switch pr.Store {
	case "redis":
		rec.Security = append(rec.Security, "the ledger is kept in Redis (store.redis)")
	case "embedded":
		rec.Security = append(rec.Security, "the ledger is kept in an embedded file on the proxy's disk (store.path)")
	}
	return rec
}

// period writes d in days when whole, else as Go writes it; none when 0.
func period(d time.Duration, none string) string {
	switch {
	case d <= 0:
		return none
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// writeMarkdown writes the record as a Markdown document.
func writeMarkdown(w io.Writer, rec processingJSON) {
	var b strings.Builder
	b.WriteString("# Record of processing activities (GDPR art. 30)\n\n")
	fmt.Fprintf(&b, "Generated %s by optinproxy from its configuration.\n\n", rec.GeneratedAt.Format(time.RFC3339))
	b.WriteString("## Controller\n\n")
	c := rec.Controller
	for _, f := range [][2]string{{"Name", c.Name}, {"Address", c.Address}, {"Contact", c.Contact}, {"Data protection officer", c.DPO}} {
		fmt.Fprintf(&b, "- %s: %s\n", f[0], orNotSet(f[1]))
	}
	b.WriteString("\n## Purposes\n\n| purpose | description | lawful basis | category | retention | double opt-in |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, p := range rec.Purposes {
		doi := "no"
		if p.DoubleOptIn {
			doi = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", cell(p.Name), cell(p.Description), p.Basis, p.Category, p.Retention, doi)
	}
	b.WriteString("\n## Categories of personal data\n\n")
	for _, d := range rec.DataCategories {
		fmt.Fprintf(&b, "- %s: %s\n", d.Name, strings.Join(d.Fields, "; "))
	}
	b.WriteString("\n## Retention\n\n| what | kept for |\n| --- | --- |\n")
	for _, r := range rec.Retention {
		fmt.Fprintf(&b, "| %s | %s |\n", cell(r.What), r.Period)
	}
	b.WriteString("\n## Security measures\n\n")
	for _, s := range rec.Security {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	b.WriteString("\n## Processors and recipients\n\n")
	if len(rec.Processors) == 0 {
		b.WriteString("None: no data leaves the proxy.\n")
	} else {
		b.WriteString("| recipient | receives | host |\n| --- | --- | --- |\n")
		for _, p := range rec.Processors {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(p.Name), cell(p.Receives), cell(p.Host))
		}
	}
	io.WriteString(w, b.String())
}

func orNotSet(s string) string {
	if s == "" {
		return "(not set)"
	}
	return cell(s)
}

// cell keeps a configured text from breaking a Markdown table or list.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\r", " ", "\n", " ").Replace(s)
}
