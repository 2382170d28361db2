package journal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"optinproxy/optin"
)

// Frame layout (see doc.go).
const (
	magic      = "OPJ1"
	headerSize = 16
	nonceSize  = 12
	tagSize    = 16
	// maxBody caps a frame's body: a larger length is a damaged header,
	// and Apply refuses a call whose changes would not fit.
	maxBody = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Why a frame does not count; decodeFrame's errors.
var (
	// errShort: the buffer ends before the frame does.
	errShort = errors.New("journal: frame cut short")
	// errHeader: no magic, a bad checksum, or a length out of range.
	errHeader = errors.New("journal: bad frame header")
	// errSeal: the header checks, but the body does not open under the
	// key, or holds no changes of ours.
	errSeal = errors.New("journal: frame does not open")
)

// newAEAD returns AES-256-GCM under key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("journal: key: %w", err)
	}
	return cipher.NewGCM(block)
}

// sealFrame returns the frame of changes, which must not be empty.
func sealFrame(aead cipher.AEAD, changes []optin.Change) ([]byte, error) {
	plain, err := encodeChanges(changes)
	if err != nil {
		return nil, fmt.Errorf("journal: encode: %w", err)
	}
	n := nonceSize + len(plain) + tagSize
	if n > maxBody {
		return nil, fmt.Errorf("journal: %w: %d changes take %d bytes, more than a frame holds (%d)", optin.ErrBadInput, len(changes), n, maxBody)
	}
	frame := make([]byte, headerSize, headerSize+n)
	copy(frame, magic)
	binary.BigEndian.PutUint32(frame[4:], uint32(n))
	binary.BigEndian.PutUint32(frame[8:], uint32(len(changes)))
	binary.BigEndian.PutUint32(frame[12:], crc32.Checksum(frame[:12], castagnoli))
	nonce := frame[headerSize : headerSize+nonceSize]
	frame = frame[:headerSize+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(frame, nonce, plain, frame[:12]), nil
}

// header reads a frame's header: the body's length and the count of
// changes. errShort when h is shorter than a header, errHeader when it
// does not check.
func header(h []byte) (bodyLen, count int, err error) {
	if len(h) < headerSize {
		return 0, 0, errShort
	}
	if string(h[:4]) != magic || binary.BigEndian.Uint32(h[12:]) != crc32.Checksum(h[:12], castagnoli) {
		return 0, 0, errHeader
	}
	n := binary.BigEndian.Uint32(h[4:])
	c := binary.BigEndian.Uint32(h[8:])
	if n < nonceSize+tagSize || n > maxBody || c == 0 {
		return 0, 0, errHeader
	}
	return int(n), int(c), nil
}

// decodeFrame opens the frame at the start of buf and returns its
// changes, each marked Once, and the frame's size. Errors: errShort,
// errHeader, errSeal.
func decodeFrame(aead cipher.AEAD, buf []byte) ([]optin.Change, int, error) {
	n, count, err := header(buf)
	if err != nil {
		return nil, 0, err
	}
	if len(buf) < headerSize+n {
		return nil, 0, errShort
	}
	return openBody(aead, buf[:headerSize], buf[headerSize:headerSize+n], count)
}

// openBody opens a body whose header h checked, holding count changes.
func openBody(aead cipher.AEAD, h, body []byte, count int) ([]optin.Change, int, error) {
	plain, err := aead.Open(nil, body[:nonceSize], body[nonceSize:], h[:12])
	if err != nil {
		return nil, 0, errSeal
	}
	changes, err := decodeChanges(plain)
	if err != nil || len(changes) != count {
		// Authentic, so written by a journal under this key, yet not
		// ours to read: a format this version does not know.
		return nil, 0, errSeal
	}
	return changes, headerSize + len(body), nil
}
