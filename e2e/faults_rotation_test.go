package e2e_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// cachingVerifier is another service that fetches the JWKS only when its
// copy is older than the Cache-Control max-age the server sent, and never
// refetches on an unknown kid: if a key signs before every such cache can
// have seen it, this verifier fails.
type cachingVerifier struct {
	url, issuer string
	client      *http.Client

	mu      sync.Mutex
	kf      keyfunc.Keyfunc
	expires time.Time
	fetches int
}

var cacheMaxAgeRE = regexp.MustCompile(`(?:^|[ ,])max-age=(\d+)`)

func (v *cachingVerifier) keys() (keyfunc.Keyfunc, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.kf != nil && time.Now().Before(v.expires) {
		return v.kf, nil
	}
	fetched := time.Now()
	r := rawDo(v.client, "GET", v.url, nil)
	if r.Err != nil || r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", v.url, r)
	}
	m := cacheMaxAgeRE.FindStringSubmatch(r.Header.Get("Cache-Control"))
	if m == nil {
		return nil, fmt.Errorf("GET %s: Cache-Control %q has no max-age", v.url, r.Header.Get("Cache-Control"))
	}
	age, _ := strconv.Atoi(m[1])
	kf, err := keyfunc.NewJWKSetJSON(json.RawMessage(r.Body))
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", r.Body, err)
	}
	// The copy is as old as the request's start: the worst case allowed.
	v.kf, v.expires, v.fetches = kf, fetched.Add(time.Duration(age)*time.Second), v.fetches+1
	return kf, nil
}

// verify checks an access token as a resource server would; it returns the
// token's kid.
func (v *cachingVerifier) verify(tok string) (string, error) {
	kf, err := v.keys()
	if err != nil {
		return "", err
	}
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(v.issuer), jwt.WithAudience(v.issuer),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(time.Second))
	tk, err := p.Parse(tok, kf.Keyfunc)
	if err != nil {
		return "", err
	}
	kid, _ := tk.Header["kid"].(string)
	return kid, nil
}

// heldToken is an access token a client holds and keeps using.
type heldToken struct {
	jwt     string
	refresh string
	got     time.Time
}

// TestFaultRotationUnderLoad: continuous logins, refreshes and authenticated
// reads for 15 s while keys rotate every 4 s; four verifiers caching the
// JWKS for its max-age, started out of phase, accept every token issued, at
// issue and at every later use; no 5xx; at least 3 signing keys seen.
func TestFaultRotationUnderLoad(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--key-rotation-interval", "4s", "--key-publish-ahead", "3s", "--jwks-max-age", "1s",
		"--clock-skew", "1s", "--access-token-ttl", "10s")
	const run = 15 * time.Second
	const users = 3
	client := loadClient(10 * time.Second)

	type account struct{ email, password string }
	var accounts []account
	var pool []heldToken
	for i := range users {
		a := account{email: uniqueEmail(fmt.Sprintf("rotation%d", i)), password: goodPassword}
		r := rawDo(client, "POST", s.Base+"/users", map[string]any{"email": a.email, "name": "Rotation", "password": a.password})
		if r.Status != http.StatusCreated {
			t.Fatalf("signup: %s", r)
		}
		accounts = append(accounts, a)
		pool = append(pool, heldToken{jwt: jsonField(r.Body, "jwt"), refresh: jsonField(r.Body, "refresh_token"), got: time.Now()})
		s.remember(pool[i].jwt)
		s.remember(pool[i].refresh)
	}

	verifiers := make([]*cachingVerifier, 4)
	for i := range verifiers {
		verifiers[i] = &cachingVerifier{url: s.Base + "/.well-known/jwks.json", issuer: s.Issuer, client: client}
	}
	var (
		mu        sync.Mutex
		kids      = map[string]int{}
		counts    = map[string]int{}
		verifyErr = newCounter()
		serverErr = newCounter()
		refused   = newCounter()
	)
	check := func(what string, tok string) {
		for i, v := range verifiers {
			kid, err := v.verify(tok)
			if err != nil {
				verifyErr.add("%s: verifier %d refuses the token: %v", what, i, err)
				continue
			}
			mu.Lock()
			kids[kid]++
			mu.Unlock()
		}
	}
	answer := func(what string, r rawResult, want int) bool {
		mu.Lock()
		counts[what]++
		mu.Unlock()
		switch {
		case r.Err != nil:
			serverErr.add("%s: %s", what, r)
		case r.Status >= 500:
			serverErr.add("%s: %s", what, r)
		case r.Status != want:
			refused.add("%s: %s, want %d", what, r, want)
		default:
			return true
		}
		return false
	}
	hold := func(h heldToken) {
		s.remember(h.jwt)
		mu.Lock()
		pool = append(pool, h)
		if len(pool) > 64 {
			pool = pool[len(pool)-64:]
		}
		mu.Unlock()
	}
	pick := func(rng *rand.Rand) heldToken {
		mu.Lock()
		defer mu.Unlock()
		// Held for at most 7 s of its 10 s: the clients are not testing
		// expiry here. The newest is the fallback.
		for range 20 {
			if h := pool[rng.IntN(len(pool))]; time.Since(h.got) < 7*time.Second {
				return h
			}
		}
		return pool[len(pool)-1]
	}

	// Phase the verifiers' caches a quarter of max-age apart.
	for i, v := range verifiers {
		time.Sleep(time.Duration(i) * 250 * time.Millisecond)
		if _, err := v.keys(); err != nil {
			t.Fatal(err)
		}
	}
	stop := time.Now().Add(run)
	var wg sync.WaitGroup
	worker := func(n int, f func(rng *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(n), 11))
			for time.Now().Before(stop) {
				f(rng)
			}
		}()
	}
	for n := range 2 { // logins
		worker(n, func(rng *rand.Rand) {
			a := accounts[rng.IntN(len(accounts))]
			r := rawDo(client, "POST", s.Base+"/access-tokens", map[string]any{"email": a.email, "password": a.password})
			if answer("POST /access-tokens", r, http.StatusCreated) {
				h := heldToken{jwt: jsonField(r.Body, "jwt"), refresh: jsonField(r.Body, "refresh_token"), got: time.Now()}
				s.remember(h.refresh)
				check("login token", h.jwt)
				hold(h)
			}
		})
	}
	for n := range 2 { // refreshes
		worker(10+n, func(rng *rand.Rand) {
			h := pick(rng)
			r := rawDo(client, "POST", s.Base+"/access-tokens/refresh", map[string]any{"refresh_token": h.refresh})
			if answer("POST /access-tokens/refresh", r, http.StatusOK) {
				nh := heldToken{jwt: jsonField(r.Body, "jwt"), refresh: h.refresh, got: time.Now()}
				check("refreshed token", nh.jwt)
				hold(nh)
			}
			time.Sleep(20 * time.Millisecond)
		})
	}
	for n := range 3 { // authenticated reads with held tokens
		worker(20+n, func(rng *rand.Rand) {
			h := pick(rng)
			check(fmt.Sprintf("token held for %v", time.Since(h.got).Round(time.Millisecond)), h.jwt)
			answer("GET /me", rawDo(client, "GET", s.Base+"/me", nil, "X-Access-Token", h.jwt), http.StatusOK)
			answer("GET /ideas", rawDo(client, "GET", s.Base+"/ideas", nil, "Authorization", "Bearer "+h.jwt), http.StatusOK)
			time.Sleep(10 * time.Millisecond)
		})
	}
	wg.Wait()

	verifyErr.report(t, "verification failures of issued tokens by a verifier caching the JWKS for its max-age")
	serverErr.report(t, "5xx answers or dropped connections")
	refused.report(t, "refusals of valid requests")
	fetches := 0
	for _, v := range verifiers {
		fetches += v.fetches
	}
	t.Logf("in %v: %v requests; kids seen %v; %d JWKS fetches by 4 caching verifiers", run, counts, kids, fetches)
	if len(kids) < 3 {
		t.Errorf("only %d distinct kids signed tokens in %v with --key-rotation-interval 4s; want at least 3: %v", len(kids), run, kids)
	}
	if counts["POST /access-tokens"] < 10 || counts["GET /me"] < 50 {
		t.Errorf("the load did not run: %v", counts)
	}
}
