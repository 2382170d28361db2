package smtpproxy

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"optinproxy/optin"
)

// Ledger is what the relay needs of the consent store: one Lookup per
// message for its decisions, and Apply for the receipts that record
// them. optin.Store implements it.
type Ledger interface {
	Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error)
	Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error)
}

// Personalize returns the copy of a message for one recipient, whole,
// when the message's purpose injects personal links (SPEC §5): the proxy
// then sends a copy per recipient instead of one transaction for all.
// header is the recipient's own copy of the header, which Personalize may
// change; body is shared and must not be changed.
type Personalize func(p optin.Purpose, to optin.Address, header textproto.Header, body []byte) ([]byte, error)

// purposeHeader names the message's purpose; it is removed before relaying.
const purposeHeader = "X-Optin-Purpose"

var errStoreDown = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
	Message: "Consent store not reachable; nothing was relayed, try again later"}

// purposeError is the 550 for a purpose the message may not have.
func purposeError(format string, args ...any) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: fmt.Sprintf(format, args...)}
}

// purposeOf resolves the message's purpose (SPEC §4): the X-Optin-Purpose
// header, else the user's default, else the policy's; and removes the
// header, so that the recipients never see it.
func (s *Server) purposeOf(x *session, msg *message) (optin.Purpose, error) {
	vals := msg.header.Values(purposeHeader)
	msg.header.Del(purposeHeader)
	name := ""
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if name != "" && v != name {
			return optin.Purpose{}, purposeError("Conflicting %s headers: %s and %s", purposeHeader, quoteName(name), quoteName(v))
		}
		name = v
	}
	if name == "" && x.user != nil {
		name = x.user.DefaultPurpose
	}
	if name == "" {
		name = s.opts.DefaultPurpose
	}
	if name == "" {
		return optin.Purpose{}, purposeError("No purpose: add an %s header naming one", purposeHeader)
	}
	p, ok := s.opts.Purposes[name]
	if !ok {
		return optin.Purpose{}, purposeError("Unknown purpose %s", quoteName(name))
	}
	if !x.mayUsePurpose(name) {
		return optin.Purpose{}, purposeError("Purpose %s is not allowed for this user", quoteName(name))
	}
	return p, nil
}

// quoteName quotes a purpose name the client gave for a reply: one line,
// printable, not too long.
func quoteName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func (x *session) mayUsePurpose(name string) bool {
	return x.user == nil || len(x.user.Purposes) == 0 || slices.Contains(x.user.Purposes, name)
}

// fixedPurpose is the purpose every message of the session will have,
// when it is known before the header: the user may use only one. Then
// recipients are decided at RCPT already (SPEC §4).
func (s *Server) fixedPurpose(x *session) (optin.Purpose, bool) {
	if s.opts.Ledger == nil || s.opts.Monitor || x.user == nil || len(x.user.Purposes) != 1 {
		return optin.Purpose{}, false
	}
	p, ok := s.opts.Purposes[x.user.Purposes[0]]
	return p, ok
}

// verdict is the fate of one recipient of the message being relayed.
type verdict struct {
	rcpt     recipient
	decision optin.Decision
	// consentEvent is the event of the record the decision rested on.
	consentEvent string
	// delivered is true when an earlier try already delivered the copy.
	delivered bool
}

// decide looks every recipient up in one round trip and decides each.
// Without a ledger every recipient is allowed (pass-through).
func (s *Server) decide(ctx context.Context, p optin.Purpose, msg *message, rcpts []recipient) ([]verdict, error) {
	vs := make([]verdict, len(rcpts))
	addrs := make([]optin.Address, len(rcpts))
	for i, r := range rcpts {
		vs[i].rcpt = r
		addrs[i] = r.addr
	}
	if s.opts.Ledger == nil {
		done, err := s.opts.Deliveries.Delivered(ctx, msg.key, addrs)
		if err != nil {
			return nil, err
		}
		for i := range vs {
			vs[i].decision = optin.Decision{Allow: true}
			vs[i].delivered = done[i]
		}
		return vs, nil
	}
	sts, err := s.opts.Ledger.Lookup(ctx, optin.LookupQuery{Purpose: p.Name, Addresses: addrs, Message: msg.key})
	if err != nil {
		return nil, err
	}
	if len(sts) != len(rcpts) {
		return nil, fmt.Errorf("lookup returned %d standings for %d recipients", len(sts), len(rcpts))
	}
	for i := range vs {
		vs[i].decision, vs[i].consentEvent = s.judge(p, sts[i])
		s.count(p, vs[i].decision)
		vs[i].delivered = sts[i].Delivered
	}
	return vs, nil
}

// judge decides one standing and names the consent event it rested on:
// the one that granted, or the record that blocked.
func (s *Server) judge(p optin.Purpose, st optin.Standing) (optin.Decision, string) {
	d := optin.Decide(p, st, s.roles.Is(st.Address), s.opts.Now())
	ev := ""
	if st.Consent != nil && (d.Reason == optin.ReasonConsent || !d.Allow) {
		ev = st.Consent.EventID
	}
	return d, ev
}

// count counts a final decision in the metrics.
func (s *Server) count(p optin.Purpose, d optin.Decision) {
	s.metrics.decisions.WithLabelValues(p.Name, d.Verb(), string(d.Reason)).Inc()
}

// refusal is a recipient refused at RCPT; its receipt is written with
// the message's, or when the transaction ends without one.
type refusal struct {
	addr         optin.Address
	purpose      string
	decision     optin.Decision
	consentEvent string
}

// decideRcpt decides one recipient at RCPT when the session's purpose is
// fixed. It returns nil to accept the recipient.
func (s *Server) decideRcpt(x *session, r recipient) error {
	p, ok := s.fixedPurpose(x)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.relays, s.opts.UpstreamTimeout)
	defer cancel()
	sts, err := s.opts.Ledger.Lookup(ctx, optin.LookupQuery{Purpose: p.Name, Addresses: []optin.Address{r.addr}})
	if err != nil || len(sts) != 1 {
		s.log.Error("consent store lookup failed", "user", x.userName(), "err", err)
		return errStoreDown
	}
	d, ev := s.judge(p, sts[0])
	if d.Allow {
		return nil // decided again, and counted, with the message
	}
	s.count(p, d)
	f := refusal{addr: r.addr, purpose: p.Name, decision: d, consentEvent: ev}
	x.tx.refused = append(x.tx.refused, f)
	s.metrics.recipients.WithLabelValues("blocked").Inc()
	return refusalReply(f)
}

// refusalReply is the 550 to RCPT for a recipient whose fate is known.
func refusalReply(f refusal) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: fmt.Sprintf("Recipient may not receive %s mail: %s", f.purpose, f.decision.Reason)}
}

// actor names the sender of receipts: the SMTP user, or the trusted
// network's client.
func (x *session) actor() string {
	if x.user != nil {
		return "smtp:" + x.user.Name
	}
	return "smtp"
}

// receiptTimeout bounds the write of a message's receipts. It does not
// share the message's deadline: copies that went out must get their
// receipts, however long the upstream took (SPEC §2).
const receiptTimeout = 30 * time.Second

// record writes receipts through the batcher, before the client gets its
// reply (SPEC §2).
func (s *Server) record(ctx context.Context, log *slog.Logger, receipts []optin.Receipt) error {
	if s.opts.Ledger == nil || len(receipts) == 0 {
		return nil
	}
	changes := make([]optin.Change, len(receipts))
	for i, r := range receipts {
		changes[i] = r.Change()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), receiptTimeout)
	defer cancel()
	if _, err := s.batcher.Apply(ctx, changes); err != nil {
		s.metrics.receiptErrors.Add(float64(len(receipts)))
		log.Error("storing receipts failed", "receipts", len(receipts), "err", err)
		return err
	}
	return nil
}

// flushRefusals records the receipts of recipients refused at RCPT of a
// transaction that ended without a message.
func (s *Server) flushRefusals(x *session) {
	if len(x.tx.refused) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.relays, s.opts.UpstreamTimeout)
	defer cancel()
	_ = s.record(ctx, s.log.With("user", x.userName()), s.refusalReceipts(x, "", ""))
	x.tx.refused = nil
}

// refusalReceipts are the receipts of the transaction's RCPT refusals.
func (s *Server) refusalReceipts(x *session, messageID, qid string) []optin.Receipt {
	now := s.opts.Now()
	out := make([]optin.Receipt, len(x.tx.refused))
	for i, f := range x.tx.refused {
		out[i] = optin.Receipt{Subject: f.addr, Purpose: f.purpose, Actor: x.actor(), Time: now, Decision: f.decision,
			Details: optin.ReceiptDetails{MessageID: messageID, QueueID: qid, ConsentEvent: f.consentEvent, Stage: "rcpt"}}
	}
	return out
}

// blockedReply is the 550 when every recipient is blocked, with each
// recipient's reason. The client gave these addresses, so naming them
// back is no leak.
func blockedReply(p optin.Purpose, blocked []verdict) *smtp.SMTPError {
	list := listRecipients(len(blocked), func(i int) string {
		return fmt.Sprintf("<%s>: %s", blocked[i].rcpt.raw, blocked[i].decision.Reason)
	})
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: fmt.Sprintf("No recipient may receive this %s message: %s", p.Name, list)}
}
