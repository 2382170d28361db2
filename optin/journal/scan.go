package journal

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"io"

	"optinproxy/optin"
)

// region is a stretch [off, end) of the journal file: one frame that
// counts (changes not nil), or a damaged region, which reaches to the
// next frame that counts or to the end of what is scanned.
type region struct {
	off, end int64
	changes  []optin.Change
	// why tells, for a damaged region, why its first bytes are not a
	// frame: errShort, errHeader or errSeal.
	why error
}

func (r region) damaged() bool { return r.changes == nil }

// scanner reads regions of a journal's bytes up to end, which must lie
// on a frame boundary or be the end of the file.
type scanner struct {
	r    io.ReaderAt
	aead cipher.AEAD
	end  int64
}

// at returns the region that starts at off (< end). Its error is only
// one of reading.
func (s *scanner) at(off int64) (region, error) {
	changes, n, why, err := s.frame(off)
	if err != nil {
		return region{}, err
	}
	if why == nil {
		return region{off: off, end: off + n, changes: changes}, nil
	}
	next, err := s.resync(off + 1)
	return region{off: off, end: next, why: why}, err
}

// frame reads the frame at off: its changes and size, or why it does
// not count.
func (s *scanner) frame(off int64) (changes []optin.Change, n int64, why, err error) {
	var h [headerSize]byte
	if s.end-off < headerSize {
		return nil, 0, errShort, nil
	}
	if err := s.read(h[:], off); err != nil {
		return nil, 0, nil, err
	}
	bodyLen, count, why := header(h[:])
	if why != nil {
		return nil, 0, why, nil
	}
	if s.end-off-headerSize < int64(bodyLen) {
		return nil, 0, errShort, nil
	}
	body := make([]byte, bodyLen)
	if err := s.read(body, off+headerSize); err != nil {
		return nil, 0, nil, err
	}
	changes, size, why := openBody(s.aead, h[:], body, count)
	return changes, int64(size), why, nil
}

// resyncWindow is how much resync reads at a time.
const resyncWindow = 64 << 10

// resync returns the offset of the first frame at or after from that
// counts, or end when there is none.
func (s *scanner) resync(from int64) (int64, error) {
	buf := make([]byte, min(resyncWindow, max(s.end-from, 0)))
	for pos := from; s.end-pos >= headerSize; {
		n := int(min(int64(len(buf)), s.end-pos))
		if err := s.read(buf[:n], pos); err != nil {
			return 0, err
		}
		for i := 0; ; {
			k := bytes.Index(buf[i:n], []byte(magic))
			if k < 0 {
				break
			}
			q := pos + int64(i+k)
			_, _, why, err := s.frame(q)
			if err != nil {
				return 0, err
			}
			if why == nil {
				return q, nil
			}
			i += k + 1
		}
		if pos+int64(n) >= s.end {
			break
		}
		// The windows overlap, so that a magic across their edge is
		// found in the next; one found whole in this window cannot
		// start in the overlap.
		pos += int64(n - (len(magic) - 1))
	}
	return s.end, nil
}

// read fills p from off; a file that ends early (cut by someone else
// while open) reads as zeros, which no frame checks as.
func (s *scanner) read(p []byte, off int64) error {
	n, err := s.r.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		clear(p[n:])
		return nil
	}
	return err
}

// chained counts the frames from the start whose headers check, each
// starting where the one before ends, whether their bodies open or not.
// More than one such frame, none of which opens, is a journal written
// under another key; a lone one may be a torn first write.
func (s *scanner) chained() int {
	n := 0
	for off := int64(0); s.end-off >= headerSize; n++ {
		var h [headerSize]byte
		if s.read(h[:], off) != nil {
			break
		}
		bodyLen, _, why := header(h[:])
		if why != nil || s.end-off-headerSize < int64(bodyLen) {
			break
		}
		off += headerSize + int64(bodyLen)
	}
	return n
}
