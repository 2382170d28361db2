package smtpproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-message/textproto"

	"optinproxy/optin"
)

// Store is what the relay needs of the consent store: one Lookup per
// message for its decisions, and Apply for the receipts that record
// them. optin.Store implements it.
type Store interface {
	Lookup(ctx context.Context, q optin.LookupQuery) ([]optin.Standing, error)
	Apply(ctx context.Context, changes []optin.Change) ([]optin.Result, error)
}

// Personalize returns the copy of a message for one recipient, when the
// message's purpose injects personal links: the proxy then sends a copy
// per recipient instead of one transaction for all. The copy is written
// as it is sent, and may be written twice (a retry on a stale upstream
// connection), so it must be built from its inputs each time, never held
// whole. message is the message's key across retries (its Message-ID, or
// a hash); header and body are the message's, shared by every copy and
// read at once by several: neither may be changed, and a copy that changes
// fields writes a Copy of header (each time it is written).
type Personalize func(p optin.Purpose, to optin.Address, message string, header textproto.Header, body []byte) (io.WriterTo, error)

// purposeHeader names the message's purpose; it is removed before relaying.
const purposeHeader = "X-Optin-Purpose"

// purposeOf resolves the message's purpose: the X-Optin-Purpose
// header, else the user's default, else the policy's; and removes the
// header, so that the recipients never see it.
func (s *Server) purposeOf(sess *session, msg *message) (optin.Purpose, error) {
	vals := msg.header.Values(purposeHeader)
	msg.header.Del(purposeHeader)
	name := ""
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if name != "" && v != name {
			return optin.Purpose{}, errConflictingPurposes(name, v)
		}
		name = v
	}
	if name == "" && sess.user != nil {
		name = sess.user.DefaultPurpose
	}
	rules := sess.tx.rules
	if name == "" {
		name = rules.defaultPurpose
	}
	if name == "" {
		return optin.Purpose{}, errNoPurpose
	}
	p, ok := rules.purposes[name]
	if !ok {
		return optin.Purpose{}, errUnknownPurpose(name, s.usablePurposes(sess))
	}
	if !sess.mayUsePurpose(name) {
		return optin.Purpose{}, errPurposeNotAllowed(name)
	}
	return p, nil
}

// quoteName quotes a purpose name the client gave for a reply: one line,
// printable, not too long.
func quoteName(s string) string { return fmt.Sprintf("%q", replyName(s)) }

// replyName is what of a name the client gave a reply may repeat: its
// printable characters, at most 64 bytes of them.
func replyName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return s
}

// usablePurposes are the purposes the session's user may use, for a reply
// that says what would be valid.
func (s *Server) usablePurposes(sess *session) optin.Purposes {
	ps := optin.Purposes{}
	for name, p := range sess.tx.rules.purposes {
		if sess.mayUsePurpose(name) {
			ps[name] = p
		}
	}
	return ps
}

func (sess *session) mayUsePurpose(name string) bool {
	return sess.user == nil || len(sess.user.Purposes) == 0 || slices.Contains(sess.user.Purposes, name)
}

// fixedPurpose is the purpose every message of the session will have,
// when it is known before the header: the user may use only one. Then
// recipients are decided at RCPT already.
func (s *Server) fixedPurpose(sess *session) (optin.Purpose, bool) {
	if s.opts.Monitor || sess.user == nil || len(sess.user.Purposes) != 1 {
		return optin.Purpose{}, false
	}
	p, ok := sess.tx.rules.purposes[sess.user.Purposes[0]]
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

// fates sorts a message's recipients by what happens to them.
type fates struct {
	verdicts []verdict
	due      []recipient // to relay now
	blocked  []verdict
	earlier  int // delivered by an earlier try
	monitor  int // blocked, but relayed in monitor mode
}

// decide looks every recipient of tx up in one round trip and decides
// each.
func (s *Server) decide(ctx context.Context, tx *transaction) (fates, error) {
	addrs := make([]optin.Address, len(tx.rcpts))
	for i, r := range tx.rcpts {
		addrs[i] = r.addr
	}
	sts, err := s.opts.Store.Lookup(ctx, optin.LookupQuery{Purpose: tx.purpose.Name, Addresses: addrs, Message: tx.msg.key})
	if err != nil {
		return fates{}, err
	}
	if len(sts) != len(tx.rcpts) {
		return fates{}, fmt.Errorf("lookup returned %d standings for %d recipients", len(sts), len(tx.rcpts))
	}
	f := fates{verdicts: make([]verdict, len(sts))}
	for i, st := range sts {
		v := verdict{rcpt: tx.rcpts[i], delivered: st.Delivered}
		v.decision, v.consentEvent = s.judge(tx.rules, tx.purpose, st)
		s.count(tx.purpose, v.decision)
		f.verdicts[i] = v
		switch {
		case v.delivered:
			f.earlier++
		case v.decision.Allow:
			f.due = append(f.due, v.rcpt)
		case s.opts.Monitor:
			f.due = append(f.due, v.rcpt)
			f.monitor++
		default:
			f.blocked = append(f.blocked, v)
		}
	}
	return f, nil
}

// judge decides one standing and names the consent event it rested on:
// the one that granted, or the record that blocked.
func (s *Server) judge(r *rules, p optin.Purpose, st optin.Standing) (optin.Decision, string) {
	d := optin.Decide(p, st, r.roles.Is(st.Address), s.opts.Now())
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
func (s *Server) decideRcpt(sess *session, r recipient) error {
	p, ok := s.fixedPurpose(sess)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.relays, s.opts.UpstreamTimeout)
	defer cancel()
	sts, err := s.opts.Store.Lookup(ctx, optin.LookupQuery{Purpose: p.Name, Addresses: []optin.Address{r.addr}})
	if err != nil || len(sts) != 1 {
		s.log.Error("consent store lookup failed", "user", sess.userName(), "err", err)
		return errStoreDown
	}
	d, ev := s.judge(sess.tx.rules, p, sts[0])
	if d.Allow {
		return nil // decided again, and counted, with the message
	}
	s.count(p, d)
	f := refusal{addr: r.addr, purpose: p.Name, decision: d, consentEvent: ev}
	sess.tx.refused = append(sess.tx.refused, f)
	s.metrics.recipients.WithLabelValues("blocked").Inc()
	return refusalReply(f)
}

// actor names the sender of receipts: the SMTP user, or the trusted
// network's client.
func (sess *session) actor() string {
	if sess.user != nil {
		return "smtp:" + sess.user.Name
	}
	return "smtp"
}

// recordMessage writes the receipts of tx once its fate is final: every
// recipient blocked or relayed earlier, or copies went out. Every
// delivered copy is marked with its receipt, in the same write, so that
// the client's retry (after a partial failure, a reply lost on its way
// back, or a proxy gone before it) delivers only the rest. When nothing
// went out, nothing is written: the client retries and the retry decides
// again. It reports whether the receipts were stored.
func (s *Server) recordMessage(ctx context.Context, tx *transaction, f fates, out outcome) bool {
	if len(f.due) > 0 && !out.sent() {
		return false
	}
	receipts := s.refusalReceipts(tx)
	for _, v := range f.blocked {
		receipts = append(receipts, s.receipt(tx, v, false, nil))
	}
	if out.sent() {
		mark := &optin.Delivery{Message: tx.msg.key, Until: s.opts.Now().Add(s.opts.DedupWindow)}
		byAddr := make(map[optin.Address]verdict, len(f.verdicts))
		for _, v := range f.verdicts {
			byAddr[v.rcpt.addr] = v
		}
		for _, a := range out.accepted {
			r := s.receipt(tx, byAddr[a], true, mark)
			r.Details.Uncertain = out.uncertain[a]
			receipts = append(receipts, r)
		}
	}
	if err := s.record(ctx, tx.log, receipts); err != nil {
		if out.sent() {
			tx.log.Error("receipts and delivered marks of relayed copies not stored; the client's retry may send them twice", "relayed", len(out.accepted))
		}
		return false
	}
	tx.refused = nil
	if out.sent() && len(out.failed) == 0 && len(f.blocked) > 0 {
		s.sendDSN(ctx, tx, f.blocked)
	}
	return true
}

// receipt is the receipt of one recipient decided at DATA.
func (s *Server) receipt(tx *transaction, v verdict, relayed bool, mark *optin.Delivery) optin.Receipt {
	r := optin.Receipt{Subject: v.rcpt.addr, Purpose: tx.purpose.Name, Actor: tx.actor, Time: s.opts.Now(),
		Decision: v.decision, Relayed: relayed, Delivered: mark,
		Details: optin.ReceiptDetails{MessageID: tx.msg.id, QueueID: tx.qid, ConsentEvent: v.consentEvent}}
	if relayed && !v.decision.Allow {
		r.Details.Mode = "monitor"
	}
	return r
}

// receiptTimeout bounds the write of a message's receipts. It does not
// share the message's deadline: copies that went out must get their
// receipts, however long the upstream took.
const receiptTimeout = 30 * time.Second

// record writes receipts through the batcher, before the client gets its
// reply.
func (s *Server) record(ctx context.Context, log *slog.Logger, receipts []optin.Receipt) error {
	if len(receipts) == 0 {
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
// transaction that ended without a message that recorded them.
func (s *Server) flushRefusals(sess *session) {
	if len(sess.tx.refused) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.relays, s.opts.UpstreamTimeout)
	defer cancel()
	_ = s.record(ctx, s.log.With("user", sess.userName()), s.refusalReceipts(&sess.tx))
	sess.tx.refused = nil
}

// refusalReceipts are the receipts of the transaction's RCPT refusals,
// with the message's ids when it got as far as DATA.
func (s *Server) refusalReceipts(tx *transaction) []optin.Receipt {
	var messageID string
	if tx.msg != nil {
		messageID = tx.msg.id
	}
	now := s.opts.Now()
	out := make([]optin.Receipt, len(tx.refused))
	for i, f := range tx.refused {
		out[i] = optin.Receipt{Subject: f.addr, Purpose: f.purpose, Actor: tx.actor, Time: now, Decision: f.decision,
			Details: optin.ReceiptDetails{MessageID: messageID, QueueID: tx.qid, ConsentEvent: f.consentEvent, Stage: "rcpt"}}
	}
	return out
}
