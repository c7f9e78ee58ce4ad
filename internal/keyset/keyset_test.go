package keyset_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/ideapool/ideapool/internal/keyset"
)

func TestNewGeneratorKeysParse(t *testing.T) {
	g := newDetGen(1)
	for _, alg := range keyset.Algorithms() {
		t.Run(string(alg), func(t *testing.T) {
			k := mustKey(t, g, alg, t0, t0)
			ks := keyset.Keyset{Keys: []keyset.Key{k}}
			data, err := keyset.Marshal(ks)
			if err != nil {
				t.Fatal(err)
			}
			got, err := keyset.Parse(data)
			if err != nil {
				t.Fatalf("Parse(Marshal(ks)): %v", err)
			}
			var a, b bytes.Buffer
			_ = json.Compact(&a, got.Keys[0].Private)
			_ = json.Compact(&b, k.Private)
			if got.Keys[0].ID != k.ID || !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Errorf("round trip changed the key")
			}
			// The kid is the RFC 7638 thumbprint, as jwx computes it.
			jk, err := jwk.ParseKey(k.Private)
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := jk.PublicKey()
			if err := jwk.AssignKeyID(pub); err != nil {
				t.Fatal(err)
			}
			if kid, _ := pub.KeyID(); kid != k.ID {
				t.Errorf("kid = %q, jwx thumbprint = %q", k.ID, kid)
			}
			if _, err := k.Signer(); err != nil {
				t.Errorf("Signer: %v", err)
			}
		})
	}
	// The real generator accepts only the supported sizes.
	if _, err := keyset.NewGenerator(rand.Reader).Generate(keyset.RS256, 1024); err == nil {
		t.Error("Generate(RS256, 1024) succeeded")
	}
}

// doc renders one key as the stored JSON, after edit changes its members.
func doc(t *testing.T, k keyset.Key, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := json.Marshal(keyset.Keyset{Keys: []keyset.Key{k}})
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Keys []map[string]any }
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(d.Keys[0])
	}
	b, err = json.Marshal(map[string]any{"keys": d.Keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func private(m map[string]any) map[string]any { return m["private"].(map[string]any) }

func TestParse(t *testing.T) {
	g := newDetGen(2)
	es := mustKey(t, g, keyset.ES256, t0, t0)
	es2 := mustKey(t, g, keyset.ES256, t0, at(time.Hour))
	ed := mustKey(t, g, keyset.EdDSA, t0, t0)
	rs := mustKey(t, g, keyset.RS256, t0, t0)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384JWK, _ := jwk.Import(p384)

	cases := map[string]struct {
		data    []byte
		wantErr string // substring; empty means valid
	}{
		"valid ES256":  {data: doc(t, es, nil)},
		"valid EdDSA":  {data: doc(t, ed, nil)},
		"valid RS256":  {data: doc(t, rs, nil)},
		"empty keyset": {data: []byte(`{"keys":[]}`)},
		"valid schedule": {data: doc(t, es, func(m map[string]any) {
			m["retired_at"] = at(time.Hour)
			m["remove_after"] = at(2 * time.Hour)
		})},
		"not json":       {data: []byte(`{"keys":`), wantErr: "invalid keyset"},
		"trailing data":  {data: append(doc(t, es, nil), []byte(`{}`)...), wantErr: "trailing"},
		"unknown field":  {data: doc(t, es, func(m map[string]any) { m["extra"] = 1 }), wantErr: "unknown field"},
		"unknown alg":    {data: doc(t, es, func(m map[string]any) { m["alg"] = "HS256" }), wantErr: "unsupported alg"},
		"alg none":       {data: doc(t, es, func(m map[string]any) { m["alg"] = "none" }), wantErr: "unsupported alg"},
		"alg/kty mixup":  {data: doc(t, es, func(m map[string]any) { m["alg"] = "RS256" }), wantErr: "does not fit"},
		"EdDSA as ES256": {data: doc(t, ed, func(m map[string]any) { m["alg"] = "ES256" }), wantErr: "does not fit"},
		"kid mismatch":   {data: doc(t, es, func(m map[string]any) { m["kid"] = es2.ID }), wantErr: "thumbprint"},
		"public key only": {data: doc(t, es, func(m map[string]any) { delete(private(m), "d") }),
			wantErr: "not a private key"},
		"foreign public half": {data: doc(t, es, func(m map[string]any) {
			var other map[string]any
			_ = json.Unmarshal(es2.Private, &other)
			private(m)["x"], private(m)["y"] = other["x"], other["y"]
		}), wantErr: "private key"},
		"Ed25519 foreign public half": {data: doc(t, ed, func(m map[string]any) { private(m)["x"] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }),
			wantErr: "private key"},
		"P-384 key as ES256": {data: doc(t, es, func(m map[string]any) {
			b, _ := json.Marshal(p384JWK)
			var pm map[string]any
			_ = json.Unmarshal(b, &pm)
			m["private"] = pm
		}), wantErr: "private key"},
		"x5c member":      {data: doc(t, es, func(m map[string]any) { private(m)["x5c"] = []string{"AAAA"} }), wantErr: "unexpected member"},
		"alg member lies": {data: doc(t, es, func(m map[string]any) { private(m)["alg"] = "ES384" }), wantErr: "alg member"},
		"missing private": {data: doc(t, es, func(m map[string]any) { delete(m, "private") }), wantErr: "private key missing"},
		"missing active_at": {data: doc(t, es, func(m map[string]any) { delete(m, "active_at") }),
			wantErr: "required"},
		"active before published": {data: doc(t, es, func(m map[string]any) { m["active_at"] = at(-time.Hour) }),
			wantErr: "active_at is before published_at"},
		"retired without remove_after": {data: doc(t, es, func(m map[string]any) { m["retired_at"] = at(time.Hour) }),
			wantErr: "set together"},
		"retired at activation": {data: doc(t, es, func(m map[string]any) {
			m["retired_at"] = t0
			m["remove_after"] = at(time.Hour)
		}), wantErr: "retired_at is not after active_at"},
		"removed before retired": {data: doc(t, es, func(m map[string]any) {
			m["retired_at"] = at(2 * time.Hour)
			m["remove_after"] = at(time.Hour)
		}), wantErr: "remove_after is before retired_at"},
		"duplicate kid": {data: func() []byte {
			b, _ := json.Marshal(keyset.Keyset{Keys: []keyset.Key{es, es}})
			return b
		}(), wantErr: "duplicate kid"},
		"duplicate active_at": {data: func() []byte {
			other := es2
			other.ActiveAt = es.ActiveAt
			b, _ := json.Marshal(keyset.Keyset{Keys: []keyset.Key{es, other}})
			return b
		}(), wantErr: "same active_at"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ks, err := keyset.Parse(tc.data)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if _, err := keyset.Marshal(ks); err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tc.wantErr)
			}
			if !errors.Is(err, keyset.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	ks := keyset.Keyset{Keys: []keyset.Key{sched("x", t0, t0)}}
	if _, err := keyset.Marshal(ks); err == nil {
		t.Fatal("Marshal of a key without material succeeded")
	}
}

func TestPolicyValidate(t *testing.T) {
	cases := map[string]struct {
		policy  keyset.Policy
		wantErr string // names the bad field; empty means valid
	}{
		"defaults":      {policy: keyset.Policy{}},
		"test policy":   {policy: testPolicy},
		"bad algorithm": {policy: keyset.Policy{Algorithm: "HS256"}, wantErr: "algorithm"},
		"bad rsa bits":  {policy: keyset.Policy{RSABits: 1024}, wantErr: "rsa_bits"},
		"publish ahead shorter than cache + skew": {
			policy:  keyset.Policy{PublishAhead: 5 * time.Minute, JWKSMaxAge: 5 * time.Minute, ClockSkew: time.Minute},
			wantErr: "publish_ahead",
		},
		"publish ahead exactly cache + skew": {
			policy: keyset.Policy{PublishAhead: 6 * time.Minute, JWKSMaxAge: 5 * time.Minute, ClockSkew: time.Minute},
		},
		"rotation shorter than publish ahead": {
			policy:  keyset.Policy{RotationInterval: 30 * time.Minute},
			wantErr: "rotation_interval",
		},
		"negative skew":    {policy: keyset.Policy{ClockSkew: -time.Second}, wantErr: "clock_skew"},
		"negative max ttl": {policy: keyset.Policy{MaxTokenTTL: -time.Second}, wantErr: "max_token_ttl"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.policy.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want error naming %q", err, tc.wantErr)
			}
		})
	}
	d := keyset.Policy{}.WithDefaults()
	if d.RSABits != 2048 || d.RotationInterval != 720*time.Hour || d.PublishAhead != time.Hour ||
		d.JWKSMaxAge != 5*time.Minute || d.ClockSkew != time.Minute || d.Algorithm != keyset.RS256 {
		t.Errorf("defaults = %+v", d)
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives a Marshal/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	g := newDetGen(3)
	for _, alg := range []keyset.Algorithm{keyset.ES256, keyset.EdDSA} {
		s, _ := g.Generate(alg, 0)
		k, _ := keyset.NewKey(s, alg, t0, t0, t0)
		k.RetiredAt, k.RemoveAfter = ptr(at(time.Hour)), ptr(at(2*time.Hour))
		b, _ := keyset.Marshal(keyset.Keyset{Keys: []keyset.Key{k}})
		f.Add(b)
	}
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kid":"a","alg":"ES256","private":{"kty":"EC","crv":"P-256","x":"","y":"","d":""}}]}`))
	f.Add([]byte(`{"keys":[{"kid":"a","alg":"RS256","private":{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, err := keyset.Parse(data)
		if err != nil {
			return
		}
		out, err := keyset.Marshal(ks)
		if err != nil {
			t.Fatalf("Marshal of a parsed keyset: %v", err)
		}
		again, err := keyset.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(data))): %v", err)
		}
		out2, _ := keyset.Marshal(again)
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip not stable:\n%s\n%s", out, out2)
		}
	})
}

// TestAuditEventNames: the audit log's event names of key changes.
func TestAuditEventNames(t *testing.T) {
	for kind, want := range map[keyset.ChangeKind]string{
		keyset.Generated: "key_generated", keyset.Activated: "key_activated", keyset.Retired: "key_retired",
		keyset.Removed: "key_removed", keyset.Revoked: "key_revoked",
	} {
		if got := kind.AuditEvent(); got != want {
			t.Errorf("%s.AuditEvent() = %q, want %q", kind, got, want)
		}
	}
}
