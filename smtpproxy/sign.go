package smtpproxy

import (
	"bytes"
	"io"
	"sync"
)

// Signer signs a copy with DKIM when a key for its From domain is
// configured: it writes msg to w, signed or not, after dropping the
// sender's signatures that the relay broke (changed names the header
// fields the relay replaced), and reports what it did. The dkim package
// implements it.
type Signer interface {
	Sign(w io.Writer, msg []byte, changed ...string) (signed bool, broken int, err error)
}

// changedFields are the header fields the relay sets or removes in a
// copy: a sender's signature over one of them no longer verifies.
var changedFields = []string{purposeHeader, "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"}

// finish makes body ready for the upstream: signed when the proxy signs.
// Without a signer, the first personal copy of a message the sender
// signed is checked for signatures the footer broke, which are counted
// and logged once per message. Either way the copy is held whole, once.
func (s *Server) finish(tx *transaction, body io.WriterTo, personal, first bool) (io.WriterTo, error) {
	check := s.opts.Signer == nil && s.opts.BrokenSignatures != nil && personal && first &&
		tx.msg.header.Has("Dkim-Signature")
	if s.opts.Signer == nil && !check {
		return body, nil
	}
	var buf bytes.Buffer
	buf.Grow(tx.msg.copyHint())
	if _, err := body.WriteTo(&buf); err != nil {
		return nil, err
	}
	tx.msg.copied(buf.Len())
	if check {
		s.countBroken(tx, s.opts.BrokenSignatures(buf.Bytes(), changedFields...))
		return bytesWriter(buf.Bytes()), nil
	}
	return &signedCopy{srv: s, tx: tx, msg: buf.Bytes()}, nil
}

// copyHint is what a copy of m is expected to take when held: the largest
// copy made so far and some for a longer address in its links, or before
// the first, m with room for the fields and the footer a copy adds.
// Held in a buffer grown by doubling, a copy would cost about as much
// again in the copies left behind.
func (m *message) copyHint() int {
	if n := m.copySize.Load(); n > 0 {
		return int(n) + copyVariance
	}
	return m.size + copyAdds
}

// copied keeps the size of a copy made, for copyHint.
func (m *message) copied(n int) {
	if int64(n) > m.copySize.Load() {
		m.copySize.Store(int64(n)) // a race between copies loses a few bytes of a hint
	}
}

const (
	// copyAdds covers the trace fields, the List-Unsubscribe fields
	// and a footer in both a text and an HTML part.
	copyAdds = 2048
	// copyVariance covers the links for a longer address than the
	// largest copy's: its token is longer, and a copy has several links.
	copyVariance = 256
)

func (s *Server) countBroken(tx *transaction, n int) {
	if n == 0 {
		return
	}
	s.metrics.brokenSignatures.Add(float64(n))
	tx.log.Warn("the sender's DKIM signature no longer verifies after the unsubscribe footer was added; configure a dkim key for the From domain, or unsubscribe.footer: false", "signatures", n)
}

// signedCopy is a copy that is signed as it is written; the upstream may
// write it twice (a retry on a stale connection), and its broken
// signatures are counted once.
type signedCopy struct {
	srv     *Server
	tx      *transaction
	msg     []byte
	counted sync.Once
}

func (c *signedCopy) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	_, broken, err := c.srv.opts.Signer.Sign(cw, c.msg, changedFields...)
	c.counted.Do(func() { c.srv.countBroken(c.tx, broken) })
	return cw.n, err
}
