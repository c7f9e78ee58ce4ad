package token

import (
	"fmt"
	"sync"
	"time"
)

// maxVerified bounds the cache of verified access tokens (about 300 bytes
// an entry).
const maxVerified = 4096

// verifiedCache remembers the access tokens a keyset state has verified, by
// SHA-256 of the token: a client presents the same token many times, and
// checking an RS256 signature costs far more than the rest of a request.
// It lives in the keyset state, so a new keyset (a key revoked, say) starts
// empty; a hit is still checked against the clock (expiry) and against the
// key's publication, so it never outlives what a full verification allows.
// Tokens have one spelling (canonical base64url is enforced), so the hash
// of the string identifies the token.
type verifiedCache struct {
	mu     sync.RWMutex
	tokens map[[32]byte]verified
}

type verified struct {
	claims AccessClaims
	kid    string
}

// recall returns the claims of a token verified before; ok is false when
// the token must be verified in full.
func (st *state) recall(sum [32]byte, now time.Time, leeway time.Duration) (c AccessClaims, err error, ok bool) {
	st.verified.mu.RLock()
	v, ok := st.verified.tokens[sum]
	st.verified.mu.RUnlock()
	if !ok {
		return AccessClaims{}, nil, false
	}
	c = v.claims
	e, known := st.keys[v.kid]
	if !known || !published(e.key, now) {
		return AccessClaims{}, nil, false
	}
	if !now.Before(c.ExpiresAt.Add(leeway)) {
		return AccessClaims{}, fmt.Errorf("verify access token: %w", ErrExpired), true
	}
	return c, nil, true
}

func (st *state) remember(sum [32]byte, c AccessClaims, kid string) {
	st.verified.mu.Lock()
	defer st.verified.mu.Unlock()
	if st.verified.tokens == nil || len(st.verified.tokens) >= maxVerified {
		// Starting over is simpler than LRU and costs one verification per
		// live token; the bound is what matters.
		st.verified.tokens = make(map[[32]byte]verified, 256)
	}
	st.verified.tokens[sum] = verified{claims: c, kid: kid}
}
