package smtpproxy

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-smtp"
)

// budget bounds the message bytes held by all transactions at once, so
// that a flood of large messages is refused with 452 4.3.1 rather than
// taking the process's memory. It counts the capacity of the buffers
// messages are read into, which is what they hold.
//
// The gauges read used and peak when scraped: a gauge kept beside used,
// added to after each change, could show a give and a take in the other
// order, and so more than the limit.
type budget struct {
	limit int64
	used  atomic.Int64
	// peak is the most bytes held at once since the start, for sizing
	// the limit.
	peak atomic.Int64
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit}
}

// take holds n bytes if they fit.
func (b *budget) take(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			b.raisePeak(used + n)
			return true
		}
	}
}

func (b *budget) raisePeak(held int64) {
	for {
		peak := b.peak.Load()
		if held <= peak || b.peak.CompareAndSwap(peak, held) {
			return
		}
	}
}

func (b *budget) give(n int64) { b.used.Add(-n) }

// fits reports whether n more bytes would fit now; for MAIL's SIZE=.
func (b *budget) fits(n int64) bool { return b.used.Load()+n <= b.limit }

// errOverBudget ends a read that would pass the budget.
var errOverBudget = errors.New("smtpproxy: in-flight byte budget exhausted")

// Reading grows a buffer from minBuffer by doubling, or straight to the
// size the client announced once the message proved as large as the
// first buffer: a large message is then copied once, not five times.
const (
	minBuffer   = 64 << 10
	readChunk   = 32 << 10
	maxPooled   = 1 << 20
	sizeHintPad = 64 << 10
)

// read reads r whole, up to limit bytes, into a buffer whose capacity it
// holds in the budget.
// It returns the message and the bytes held, to give back with release
// once the message is done; on an error, nothing stays held.
func (b *budget) read(r io.Reader, hint, limit int64) ([]byte, int64, error) {
	buf := getBuffer()
	held := int64(cap(buf))
	if !b.take(held) {
		putBuffer(buf)
		return nil, 0, errOverBudget
	}
	for {
		if len(buf) == cap(buf) {
			next := nextCap(len(buf), hint, limit)
			if !b.take(int64(next - cap(buf))) {
				b.release(buf, held)
				return nil, 0, errOverBudget
			}
			held += int64(next - cap(buf))
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			putBuffer(buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), len(buf)+readChunk)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			err = smtp.ErrDataTooLarge
		}
		if err == io.EOF {
			return buf, held, nil
		}
		if err != nil {
			b.release(buf, held)
			return nil, 0, err
		}
	}
}

// nextCap is the capacity a full buffer of n bytes grows to.
func nextCap(n int, hint, limit int64) int {
	next := 2 * n
	if int64(n) < hint {
		next = max(next, int(min(hint, limit))+sizeHintPad)
	}
	// go-smtp's reader stops a message at limit bytes, so a buffer need
	// never be much larger.
	if top := int(limit) + readChunk; next > top && n < top {
		next = top
	}
	return next
}

// release gives back buf's budget and keeps small buffers for reuse.
func (b *budget) release(buf []byte, held int64) {
	putBuffer(buf)
	b.give(held)
}

var buffers = sync.Pool{New: func() any { return new([]byte) }}

func getBuffer() []byte {
	p := buffers.Get().(*[]byte)
	if cap(*p) == 0 {
		return make([]byte, 0, minBuffer)
	}
	return (*p)[:0]
}

// putBuffer keeps buffers up to maxPooled for reuse; bigger ones would pin
// memory after one large message.
func putBuffer(b []byte) {
	if cap(b) > maxPooled || cap(b) == 0 {
		return
	}
	buffers.Put(&b)
}

// readError is the reply to a message that could not be read whole.
func readError(err error) error {
	switch {
	case errors.Is(err, errOverBudget):
		return errBusy
	case errors.Is(err, smtp.ErrDataTooLarge):
		return errTooLarge
	case errors.Is(err, smtp.ErrTooLongLine):
		return errLineTooLong
	}
	return errClientGone
}
