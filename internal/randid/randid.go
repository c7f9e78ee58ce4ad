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

// Secret returns bits/8 random bytes encoded as unpadded base64url.
func Secret(r io.Reader, bits int) (string, error) {
	buf := make([]byte, bits/8)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("read random secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}
