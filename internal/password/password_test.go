package password_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/ideapool/ideapool/internal/password"
)

func TestHashVerify(t *testing.T) {
	h, err := password.NewHasher(password.OWASP, rand.Reader, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hash, err := h.Hash(ctx, "the-Secret-123")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not OWASP argon2id in PHC format", hash)
	}
	tests := map[string]struct {
		hash, pw string
		want     error
	}{
		"right":              {hash, "the-Secret-123", nil},
		"wrong":              {hash, "the-Secret-124", password.ErrMismatch},
		"prefix":             {hash, "the-Secret-12", password.ErrMismatch},
		"over the limit":     {hash, "the-Secret-123" + strings.Repeat("x", password.MaxLen), password.ErrMismatch},
		"not argon2id":       {"$2a$10$abcdefghijklmnopqrstuu", "x", nil},
		"absurd memory cost": {"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "x", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := h.Verify(ctx, tc.hash, tc.pw)
			switch {
			case tc.want == nil && name == "right" && err != nil:
				t.Fatalf("verify: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("verify = %v, want %v", err, tc.want)
			case tc.want == nil && name != "right" && err == nil:
				t.Fatalf("verify accepted a malformed hash")
			}
		})
	}
	if _, err := h.Hash(ctx, strings.Repeat("x", password.MaxLen+1)); err == nil {
		t.Fatal("hashed a password over the limit instead of refusing it")
	}
}

func TestIsCommon(t *testing.T) {
	for pw, want := range map[string]bool{
		"Password1":          true,
		"PASSWORD123":        true,
		"qwerty123":          true,
		"the-Secret-123":     false,
		"correct horse xyz9": false,
	} {
		if got := password.IsCommon(pw); got != want {
			t.Errorf("IsCommon(%q) = %v, want %v", pw, got, want)
		}
	}
}
