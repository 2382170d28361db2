package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
)

// MinRSABits is the shortest RSA key New and LoadKey accept: RFC 8301
// forbids verifiers to accept shorter ones. Keys under RecommendedRSABits
// still sign, but some receivers treat them as weak.
const (
	MinRSABits         = 1024
	RecommendedRSABits = 2048
)

// maxKeyBytes bounds a key file: a bigger one is a wrong path.
const maxKeyBytes = 64 << 10

// LoadKey reads a private key from the file at path. It accepts the forms
// key tools write: PEM "PRIVATE KEY" (PKCS #8, RSA or Ed25519), PEM "RSA
// PRIVATE KEY" (PKCS #1), and, for Ed25519, a bare base64 seed (32 bytes)
// or seed and public key (64 bytes), as dkimpy's dknewkey and rspamd write
// them. The key is checked as New checks it.
func LoadKey(path string) (crypto.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d KiB", ErrKey, path, maxKeyBytes>>10)
	}
	key, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// ParseKey is LoadKey for a key already read.
func ParseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return parseRawEd25519(data)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a private key DKIM can use (want PRIVATE KEY or RSA PRIVATE KEY)", ErrKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T cannot sign", ErrKey, key)
	}
	if err := checkKey(signer); err != nil {
		return nil, err
	}
	return signer, nil
}

// parseRawEd25519 reads the base64 Ed25519 seed that dkimpy and rspamd
// write without PEM armour.
func parseRawEd25519(data []byte) (crypto.Signer, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("%w: neither PEM nor a base64 Ed25519 seed", ErrKey)
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		key := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !key.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(raw[ed25519.SeedSize:])) {
			return nil, fmt.Errorf("%w: the Ed25519 key's public half does not match its seed", ErrKey)
		}
		return key, nil
	}
	return nil, fmt.Errorf("%w: base64 of %d bytes is no Ed25519 seed (want %d or %d)", ErrKey, len(raw), ed25519.SeedSize, ed25519.PrivateKeySize)
}

// checkKey refuses keys DKIM has no algorithm for and short RSA keys.
func checkKey(k crypto.Signer) error {
	switch pub := k.Public().(type) {
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < MinRSABits {
			return fmt.Errorf("%w: RSA key of %d bits; want at least %d (%d recommended)", ErrKey, n, MinRSABits, RecommendedRSABits)
		}
		return nil
	default:
		return fmt.Errorf("%w: %T keys have no DKIM algorithm; use Ed25519 or RSA", ErrKey, pub)
	}
}

// RSABits returns the length of k's modulus when k is an RSA key, else 0:
// check-config warns of keys under RecommendedRSABits.
func RSABits(k crypto.Signer) int {
	if pub, ok := k.Public().(*rsa.PublicKey); ok {
		return pub.N.BitLen()
	}
	return 0
}
