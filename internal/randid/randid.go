// Package randid makes short random identifiers and opaque secrets from an
// injected source of randomness.
package randid

import (
	"encoding/base64"
	"fmt"
	"io"
)

const alphabet = "0123456789abcdefghijklmnopqrstuv" // base32hex, lower-case

// New returns n characters of lower-case base32hex (5 random bits each),
// like "tg2b9rh1i" for n = 9.
func New(r io.Reader, n int) (string, error) {
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("read random id: %w", err)
	}
	for i, b := range buf {
		buf[i] = alphabet[b&31]
	}
	return string(buf), nil
}

// MaxLen is the longest id New is asked for anywhere.
const MaxLen = 64

// Plausible reports whether id could have come from New: 1 to MaxLen
// characters of its alphabet. Anything else names nothing, and is refused
// before a database sees it (PostgreSQL fails on NUL and bytes that are not
// UTF-8).
func Plausible(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'v') {
			return false
		}
	}
	return true
}

// Secret returns bits/8 random bytes encoded as unpadded base64url.
func Secret(r io.Reader, bits int) (string, error) {
	buf := make([]byte, bits/8)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("read random secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}
