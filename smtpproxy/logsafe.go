package smtpproxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// userHashKey keys the hash that stands for a user name in the log of a
// failed AUTH. The name given may be a password typed into the wrong
// field, and a short unkeyed hash of a weak password is quickly reversed.
// The key lives as long as the process: within a run, repeated failures
// with one name show the same hash; across runs they do not.
var userHashKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails (crypto/rand)
	return k
}()

// userHash is what a failed AUTH logs in place of the name given: 12 hex
// digits of HMAC-SHA-256 under userHashKey.
func userHash(name string) string {
	m := hmac.New(sha256.New, userHashKey)
	m.Write([]byte(name))
	return hex.EncodeToString(m.Sum(nil)[:6])
}
