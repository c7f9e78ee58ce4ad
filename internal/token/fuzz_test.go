package token_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/token"
)

// FuzzVerifyAccess: whatever string comes in, VerifyAccess never panics,
// refuses with ErrInvalidToken, and accepts only the exact valid tokens it
// was seeded with: no mutation of a valid token (header, claims, signature,
// its encoding) is accepted.
//
// The fuzzing workers are separate processes that run this setup again, so
// the valid tokens must come out the same in each: a fixed RSA key
// (PKCS #1 v1.5 signatures are deterministic) and the fixed-seed Ed25519
// key, no ECDSA (its signatures are randomized).
func FuzzVerifyAccess(f *testing.F) {
	clk := newClock(t0)
	block, _ := pem.Decode([]byte(fuzzRSAKey))
	rsKey, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		f.Fatal(err)
	}
	rsk, err := keyset.NewKey(rsKey, keyset.RS256, t0.Add(-time.Hour), t0.Add(-time.Hour), t0.Add(-time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	ed := key(f, keyset.EdDSA, 0, t0.Add(-time.Hour), t0.Add(10*time.Hour))
	m := newManager(f, clk, keyset.Keyset{Keys: []keyset.Key{rsk, ed}})
	rs, _, err := m.SignAccess(token.AccessClaims{Subject: "user-1", SessionID: "session-1", Email: "a@example.test"}, time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	eds := signRaw(f, jwa.EdDSA(), signers()[keyset.EdDSA][0], map[string]any{"kid": ed.ID, "typ": "at+jwt"}, validClaims())
	valid := map[string]bool{rs: true, eds: true}
	for tok := range valid {
		if _, err := m.VerifyAccess(tok); err != nil {
			f.Fatalf("seed token refused: %v", err)
		}
	}

	for tok := range valid {
		p := strings.Split(tok, ".")
		f.Add(tok)
		f.Add(p[0] + "." + p[1] + ".")
		f.Add(p[0] + "." + p[1])
		f.Add(tok + ".")
		f.Add(tok + "=")
		f.Add(" " + tok)
		f.Add(p[0] + "." + p[1] + "." + p[2][:len(p[2])-1])
		f.Add(p[0] + "." + p[1] + "." + flip(p[2]))
		f.Add(p[0] + "." + flip(p[1]) + "." + p[2])
		f.Add(strings.ReplaceAll(tok, "-", "+"))
		f.Add(strings.ReplaceAll(tok, "_", "/"))
		// The last character of a segment carries padding bits.
		f.Add(p[0] + "." + p[1] + "." + lastCharPlus(p[2], 1))
		f.Add(p[0] + "." + p[1] + "." + lastCharPlus(p[2], 2))
	}
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")
	f.Add(`eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLTEifQ.`)
	f.Add(`{"protected":"x","payload":"y","signature":"z"}`)

	f.Fuzz(func(t *testing.T, s string) {
		c, err := m.VerifyAccess(s)
		if err == nil {
			if !valid[s] {
				t.Fatalf("VerifyAccess accepts %q, which is not one of the tokens issued (claims %+v)", s, c)
			}
			return
		}
		if !errors.Is(err, token.ErrInvalidToken) && !errors.Is(err, token.ErrExpired) {
			t.Fatalf("VerifyAccess(%q) = %v, want ErrInvalidToken", s, err)
		}
		checkOneKind(t, err)
		if valid[s] {
			t.Fatalf("VerifyAccess refuses the valid token %q: %v", s, err)
		}
	})
}

// lastCharPlus moves the last base64url character of seg by d places in
// the alphabet, changing only its low bits when d is small.
func lastCharPlus(seg string, d int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	if i < 0 {
		return seg
	}
	return seg[:len(seg)-1] + string(alphabet[(i+d)%64])
}

// fuzzRSAKey is a fixed 2048-bit test key, used nowhere else.
const fuzzRSAKey = `-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAyDy7urJDriSui2ds6A8M/kLdC0S10MZtgpoCC+gfNP6y0XvD
ZXztCZbrm/eB/sER66APsObAZEQhCzkBQUjgAqTcBGkg0GHl1EQF4rk3yubuM+44
Dizq3R4vaT4UEl/bXM3ujn6hUH3kzjynzq4eMQW54IaM2HW+Iqor3RATQiU17TOX
nUzST+kPpI6Wo9vxwBp8fZQr4avyx3y1ltuJZo110S9p2rdNpM+Wlf8nVCm2gWRP
PpLSxlFM7FPy5OU29Ckbx09hegAuzqaQlluVcbCFo6L7bPmbaHWxpDleT8aJ9yHN
PQfnmXRcqNPmUX+5Lp1/jc1Bdvtbm4PYK8jeKwIDAQABAoIBACfzljFF6CMSxpCh
7iTO+/SvOpNI/k3NiYQJXmcpxTA5sUwCuZXCOzkyl4fi9ljyBLVSlk7he3mF7mHi
2dFAzRE5+3wVzapGHikf+VynP+6H7PcHjL+nTqUXpLYG4NJZtdbqb7KWqXD57XEI
wSKHsxZs4g1eSzPVKj6YXXAaCP2lPCWOcJI70RxTAHj7MotnfKuRF/OBobbccvNf
XRG7y8PBZ1JconPYJOmv0frAHF0jo6DzW+DGXmSoVcSDLGtxTlSBEh5S8prxh/af
Pwwwk+se5Hgbczn8FXwUprSrotaqntx04h6cEa5veZyRkONUKfPCcI2Vu+BfpiB7
irURQ4ECgYEA+8k/JH+twrowlOegWEG6786ZNgAQdxjyVQVEYsnIMZfGqPJc7pH8
+OI9I+cVBkuE2qy0mhIaDoHx04DpEl7YfLyqaDR6WcdQjboDrEUyHv7m52jd27C9
tDAhlVAdIr8WEWvqmKJ6ubhfyiBO2O1DtmC/U8SmSEfEcjdHS+XqonECgYEAy5ah
Zd4udj+TbCwjqU5GwJJmgJXqqWtV4+3fWmA0rKC04pE3aLcEjjRsKQUsPb/kgsd4
t4U7nyqiJexMtXq9NOUzjKol6FYeiiHi6vwLd6EDu7G6BExXKnx++IOtgoxulMEF
RUtB6o+JGU5tw+r83evGb8JzdHvP9idbGvHDIFsCgYAGdU4CUKgTU5VFbH+HZAA4
gHMbmHrTozcsCRuM8SIKa5sz4CuUDviPJbZtwlKeu7cnqMBlJ0u1zY13YFoaF4a0
BF7Wl2n//YXKbNgFRi0X8G/Zxa3TIcBr68QgwVJN/trBDaSRz7EYLGuAkr2TANr4
xZiCvIuLVRPr3hEdGEOhcQKBgF6QW+1+MySXyTlAk1vr0O9X0Sa++92vzphtgAZx
k2Xvy7VFcHBCOmp3LRosne0cud6JGqhbyWLYIbLtvH+7QDFWmQgobC0r+0l8DfPK
GOV7M8m19spST1abtzplp21xH1gXBAS4vShffXX0uQV8m/HUtzpoHsqnS+RxSV8N
lu3rAoGBAMyf4LPcjDSjKEY1ao3ewKzZIdnKx9OSDRw+kdr64jcap8GgucoHUY49
7A77tWT0eviCkqczHGTrnBAxlNWTw178fKmE70AyysylbHAvWPyb9pa7d5Wl4jNX
6196pHIzJXeezhR6migZ63DnZVQTjh9vsH3TfoBX/GBEh/LgX5H0
-----END RSA PRIVATE KEY-----`
