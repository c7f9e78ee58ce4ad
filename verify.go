package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/sync/errgroup"

	"github.com/ideapool/ideapool/internal/contract"
)

const verifyLoadAbout = `Verifies ideapool's tokens the way another service would, under load, and
counts what goes wrong: for a cluster test, or to watch a rotation.

It reads the discovery document of --url, fetches the JWKS from its jwks_uri
and caches it for the Cache-Control max-age (when a token names a key the
cached JWKS lacks, it counts an unknown kid and, like go-oidc, fetches the
JWKS again at most once a second). It signs up an account of its own, then
each worker obtains fresh access tokens from POST /access-tokens/refresh and
verifies each one (signature, typ at+jwt, iss and aud the issuer, expiry);
every --write-every-th token also creates an idea, remembered once the API
acknowledges it. Counts are served as JSON on --listen: GET /counts, and
GET /audit, which lists the account's ideas through the API and names every
acknowledged idea that is missing. They are also logged every --log-every.

With --check it checks once and exits instead (the Helm chart's test): it
waits up to --check-wait for GET /readyz to answer 200, then requires the
discovery document and a JWKS with at least one key; it creates nothing.`

func runVerifyLoad(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify-load", flag.ContinueOnError)
	var c verifyConfig
	fs.StringVar(&c.url, "url", "", "base URL of the ideapool API to load, e.g. http://NAME.NAMESPACE.svc (required)")
	fs.StringVar(&c.listen, "listen", ":8080", "address of GET /counts, GET /audit and GET /healthz")
	fs.IntVar(&c.workers, "workers", 2, "workers obtaining and verifying tokens at once")
	fs.DurationVar(&c.interval, "interval", 100*time.Millisecond, "pause of each worker between two tokens")
	fs.IntVar(&c.writeEvery, "write-every", 5, "create an idea with every N-th token (0: never)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of each request")
	fs.DurationVar(&c.leeway, "leeway", 5*time.Second, "clock leeway when checking exp and iat")
	fs.DurationVar(&c.logEvery, "log-every", 10*time.Second, "how often the counts are logged")
	fs.BoolVar(&c.check, "check", false, "check once that the API is ready and publishes a JWKS with a key, then exit (helm test)")
	fs.DurationVar(&c.checkWait, "check-wait", 2*time.Minute, "with --check: how long to wait for /readyz to answer 200")
	fs.StringVar(&c.pinnedCert, "pinned-certificate", "", "PEM file whose first certificate an https --url must present (e.g. the app's own tls.crt): the server is trusted when its certificate is exactly that one, whatever its names and issuer")
	if err := parseFlags(fs, args, verifyLoadAbout, stdout, stderr); err != nil {
		return err
	}
	if c.url == "" {
		return errors.New("--url: required")
	}
	if c.workers < 1 {
		return errors.New("--workers: must be at least 1")
	}
	c.url = strings.TrimRight(c.url, "/")
	client := &http.Client{Timeout: c.timeout}
	if c.pinnedCert != "" {
		if !strings.HasPrefix(c.url, "https://") {
			return errors.New("--pinned-certificate: --url must be https://")
		}
		tr, err := pinnedTransport(c.pinnedCert)
		if err != nil {
			return err
		}
		client.Transport = tr
	}
	v := newVerifyLoad(c, client, time.Now)
	if c.check {
		return v.check(ctx, stdout, time.Sleep)
	}
	return v.run(ctx, slog.New(slog.NewJSONHandler(stderr, nil)))
}

type verifyConfig struct {
	url        string
	listen     string
	workers    int
	interval   time.Duration
	writeEvery int
	timeout    time.Duration
	leeway     time.Duration
	logEvery   time.Duration
	check      bool
	checkWait  time.Duration
	pinnedCert string
}

// verifyCounts are the verifier's counters, served at GET /counts.
type verifyCounts struct {
	Tokens        int64            `json:"tokens"`         // fresh access tokens obtained
	Verified      int64            `json:"verified"`       // ... that verified
	Failures      int64            `json:"failures"`       // ... that did not (signature, typ, claims)
	UnknownKid    int64            `json:"unknown_kid"`    // ... whose kid the cached JWKS lacked
	Status5xx     int64            `json:"status_5xx"`     // answers of the API with a 5xx status
	Status4xx     int64            `json:"status_4xx"`     // unexpected 4xx answers
	RequestErrors int64            `json:"request_errors"` // requests without an answer (refused, reset, timeout)
	IdeasAcked    int64            `json:"ideas_acked"`    // ideas whose creation was acknowledged (201)
	JWKSFetches   int64            `json:"jwks_fetches"`
	ByKid         map[string]int64 `json:"by_kid"` // verified tokens by signing key
	LastFailure   string           `json:"last_failure,omitempty"`
	LastError     string           `json:"last_error,omitempty"`
}

type verifyLoad struct {
	cfg    verifyConfig
	client *http.Client
	now    func() time.Time

	tokens, verified, failures, unknownKid    atomic.Int64
	status5xx, status4xx, requestErrors, acks atomic.Int64

	mu          sync.Mutex
	byKid       map[string]int64
	acked       []string
	lastFailure string
	lastError   string

	issuer string
	jwks   *jwksCache
	acct   verifyAccount
}

type verifyAccount struct {
	email, password string
}

func newVerifyLoad(c verifyConfig, client *http.Client, now func() time.Time) *verifyLoad {
	return &verifyLoad{cfg: c, client: client, now: now, byKid: map[string]int64{}}
}

func (v *verifyLoad) run(ctx context.Context, log *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", v.cfg.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", v.cfg.listen, err)
	}
	srv := &http.Server{Handler: v.handler(), ReadHeaderTimeout: 5 * time.Second}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveUntilDone(ctx, srv, ln, 0, 5*time.Second) })
	g.Go(func() error {
		// The API may not answer yet (its pods starting, DNS): retry setup.
		var refresh string
		for {
			var err error
			if refresh, err = v.setup(ctx); err == nil {
				break
			}
			log.Warn("verify-load setup failed; retrying", "error", err.Error())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
		log.Info("verifying", "url", v.cfg.url, "issuer", v.issuer, "jwks_uri", v.jwks.url, "workers", v.cfg.workers)
		wg, wctx := errgroup.WithContext(ctx)
		for i := 0; i < v.cfg.workers; i++ {
			wg.Go(func() error { v.worker(wctx, refresh); return nil })
		}
		wg.Go(func() error {
			t := time.NewTicker(v.cfg.logEvery)
			defer t.Stop()
			for {
				select {
				case <-wctx.Done():
					return nil
				case <-t.C:
					c := v.counts()
					log.Info("counts", "tokens", c.Tokens, "verified", c.Verified, "failures", c.Failures,
						"unknown_kid", c.UnknownKid, "status_5xx", c.Status5xx, "status_4xx", c.Status4xx,
						"request_errors", c.RequestErrors, "ideas_acked", c.IdeasAcked, "jwks_fetches", c.JWKSFetches,
						"last_failure", c.LastFailure, "last_error", c.LastError)
				}
			}
		})
		return wg.Wait()
	})
	return g.Wait()
}

// check waits for /readyz, then requires discovery and a JWKS with a key.
func (v *verifyLoad) check(ctx context.Context, stdout io.Writer, sleep func(time.Duration)) error {
	deadline := v.now().Add(v.cfg.checkWait)
	for {
		_, err := v.call(ctx, http.MethodGet, v.cfg.url+"/readyz", "", nil, http.StatusOK, nil)
		if err == nil {
			break
		}
		if !v.now().Before(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s/readyz did not answer 200 within %s: %w", v.cfg.url, v.cfg.checkWait, err)
		}
		sleep(2 * time.Second)
	}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if _, err := v.call(ctx, http.MethodGet, v.cfg.url+"/.well-known/openid-configuration", "", nil, http.StatusOK, &disc); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if disc.Issuer == "" || disc.JWKSURI == "" {
		return errors.New("discovery: no issuer or jwks_uri")
	}
	// The JWKS is fetched through --url at the path the server serves it:
	// the issuer's public host may not resolve inside the cluster, and its
	// path (an issuer may have one) is a proxy's, not the server's.
	c := newJWKSCache(v.client, v.cfg.url+contract.JWKSPath, v.now)
	if err := c.fetch(ctx, v.now()); err != nil {
		return err
	}
	if c.set.Len() == 0 {
		return fmt.Errorf("the JWKS at %s has no key", c.url)
	}
	_, err := fmt.Fprintf(stdout, "ok: %s is ready; issuer %s publishes %d keys at %s\n", v.cfg.url, disc.Issuer, c.set.Len(), disc.JWKSURI)
	return err
}

// setup reads discovery and signs up the verifier's own account; it
// returns the account's refresh token.
func (v *verifyLoad) setup(ctx context.Context) (string, error) {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if _, err := v.call(ctx, http.MethodGet, v.cfg.url+"/.well-known/openid-configuration", "", nil, http.StatusOK, &disc); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	if disc.Issuer == "" || disc.JWKSURI == "" {
		return "", errors.New("discovery: no issuer or jwks_uri")
	}
	v.issuer = disc.Issuer
	v.jwks = newJWKSCache(v.client, disc.JWKSURI, v.now)
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	v.acct = verifyAccount{email: "verify-" + hex.EncodeToString(b[:6]) + "@example.com", password: "Vl-" + hex.EncodeToString(b)}
	var tok struct {
		JWT     string `json:"jwt"`
		Refresh string `json:"refresh_token"`
	}
	body := map[string]string{"email": v.acct.email, "name": "ideapool verify-load", "password": v.acct.password}
	if _, err := v.call(ctx, http.MethodPost, v.cfg.url+"/users", "", body, http.StatusCreated, &tok); err != nil {
		return "", fmt.Errorf("signup: %w", err)
	}
	return tok.Refresh, nil
}

func (v *verifyLoad) worker(ctx context.Context, refresh string) {
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(v.cfg.interval):
		}
		var tok struct {
			JWT string `json:"jwt"`
		}
		if _, err := v.call(ctx, http.MethodPost, v.cfg.url+"/access-tokens/refresh", "",
			map[string]string{"refresh_token": refresh}, http.StatusOK, &tok); err != nil {
			continue // counted by call
		}
		v.tokens.Add(1)
		kid, err := v.verify(ctx, tok.JWT)
		if err != nil {
			v.failures.Add(1)
			v.note(&v.lastFailure, err)
			continue
		}
		v.verified.Add(1)
		v.mu.Lock()
		v.byKid[kid]++
		v.mu.Unlock()
		if v.cfg.writeEvery > 0 && n%v.cfg.writeEvery == 0 {
			var idea struct {
				ID string `json:"id"`
			}
			body := map[string]any{"content": fmt.Sprintf("verify-load %d", n), "impact": 5, "ease": 5, "confidence": 5}
			if _, err := v.call(ctx, http.MethodPost, v.cfg.url+"/ideas", tok.JWT, body, http.StatusCreated, &idea); err == nil {
				v.acks.Add(1)
				v.mu.Lock()
				v.acked = append(v.acked, idea.ID)
				v.mu.Unlock()
			}
		}
	}
}

// verify checks tok as a resource server would and returns its kid.
func (v *verifyLoad) verify(ctx context.Context, tok string) (string, error) {
	msg, err := jws.ParseString(tok)
	if err != nil {
		return "", fmt.Errorf("not a JWS: %w", err)
	}
	if len(msg.Signatures()) != 1 {
		return "", errors.New("not exactly one signature")
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	kid, _ := h.KeyID()
	if typ, _ := h.Type(); typ != "at+jwt" {
		return kid, fmt.Errorf("typ %q, want at+jwt", typ)
	}
	set, missed, err := v.jwks.keys(ctx, kid)
	if missed {
		v.unknownKid.Add(1)
	}
	if err != nil {
		return kid, err
	}
	_, err = jwt.ParseString(tok,
		jwt.WithKeySet(set, jws.WithRequireKid(true)),
		jwt.WithIssuer(v.issuer), jwt.WithAudience(v.issuer),
		jwt.WithAcceptableSkew(v.cfg.leeway), jwt.WithClock(jwt.ClockFunc(v.now)))
	if err != nil {
		return kid, fmt.Errorf("kid %s: %w", kid, err)
	}
	return kid, nil
}

// call sends one request and decodes a JSON answer of status want into
// out, counting every other outcome.
func (v *verifyLoad) call(ctx context.Context, method, url, token string, body any, want int, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			v.requestErrors.Add(1)
			v.note(&v.lastError, err)
		}
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		v.requestErrors.Add(1)
		v.note(&v.lastError, err)
		return resp.StatusCode, err
	}
	if resp.StatusCode != want {
		err := fmt.Errorf("%s %s: status %d: %.200s", method, url, resp.StatusCode, data)
		if resp.StatusCode >= 500 {
			v.status5xx.Add(1)
		} else {
			v.status4xx.Add(1)
		}
		v.note(&v.lastError, err)
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			v.note(&v.lastError, err)
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	return resp.StatusCode, nil
}

func (v *verifyLoad) note(dst *string, err error) {
	v.mu.Lock()
	*dst = err.Error()
	v.mu.Unlock()
}

func (v *verifyLoad) counts() verifyCounts {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := verifyCounts{
		Tokens: v.tokens.Load(), Verified: v.verified.Load(), Failures: v.failures.Load(),
		UnknownKid: v.unknownKid.Load(), Status5xx: v.status5xx.Load(), Status4xx: v.status4xx.Load(),
		RequestErrors: v.requestErrors.Load(), IdeasAcked: v.acks.Load(),
		ByKid: make(map[string]int64, len(v.byKid)), LastFailure: v.lastFailure, LastError: v.lastError,
	}
	if v.jwks != nil {
		c.JWKSFetches = v.jwks.fetches.Load()
	}
	for k, n := range v.byKid {
		c.ByKid[k] = n
	}
	return c
}

// audit lists the account's ideas through the API and returns the
// acknowledged ones that are missing.
func (v *verifyLoad) audit(ctx context.Context) (acked int, missing []string, err error) {
	v.mu.Lock()
	want := append([]string(nil), v.acked...)
	v.mu.Unlock()
	var tok struct {
		JWT string `json:"jwt"`
	}
	if _, err := v.call(ctx, http.MethodPost, v.cfg.url+"/access-tokens", "",
		map[string]string{"email": v.acct.email, "password": v.acct.password}, http.StatusCreated, &tok); err != nil {
		return 0, nil, fmt.Errorf("login: %w", err)
	}
	have := map[string]bool{}
	for page := 1; ; page++ {
		var ideas []struct {
			ID string `json:"id"`
		}
		if _, err := v.call(ctx, http.MethodGet, v.cfg.url+"/ideas?page="+strconv.Itoa(page), tok.JWT, nil, http.StatusOK, &ideas); err != nil {
			return 0, nil, fmt.Errorf("ideas page %d: %w", page, err)
		}
		if len(ideas) == 0 {
			break
		}
		for _, i := range ideas {
			have[i.ID] = true
		}
	}
	for _, id := range want {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	return len(want), missing, nil
}

func (v *verifyLoad) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if v.verified.Load() == 0 {
			http.Error(w, "no token verified yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, v.counts())
	})
	mux.HandleFunc("GET /audit", func(w http.ResponseWriter, r *http.Request) {
		acked, missing, err := v.audit(r.Context())
		if missing == nil {
			missing = []string{}
		}
		if err != nil {
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"acked": acked, "missing": missing})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// jwksCache holds a JWKS for its Cache-Control max-age, as a resource
// server's JWKS client does; a kid it lacks makes it fetch again, at most
// once per jwksRefetchEvery.
type jwksCache struct {
	client  *http.Client
	url     string
	now     func() time.Time
	fetches atomic.Int64

	mu        sync.Mutex
	set       jwk.Set
	expires   time.Time
	lastFetch time.Time
}

const (
	// jwksRefetchEvery bounds fetches for unknown kids (go-oidc coalesces
	// them similarly): a flood of forged kids cannot make us hammer the
	// issuer.
	jwksRefetchEvery = time.Second
	// jwksDefaultMaxAge applies when the JWKS has no Cache-Control max-age.
	jwksDefaultMaxAge = time.Minute
)

func newJWKSCache(c *http.Client, url string, now func() time.Time) *jwksCache {
	return &jwksCache{client: c, url: url, now: now}
}

// keys returns the key set to verify a token of kid with; missed reports
// that the cached set, still fresh, lacked kid.
func (c *jwksCache) keys(ctx context.Context, kid string) (set jwk.Set, missed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.set == nil || !now.Before(c.expires) {
		if err := c.fetch(ctx, now); err != nil {
			return nil, false, err
		}
	}
	if _, ok := c.set.LookupKeyID(kid); ok {
		return c.set, false, nil
	}
	if now.Sub(c.lastFetch) >= jwksRefetchEvery {
		if err := c.fetch(ctx, now); err != nil {
			return nil, true, err
		}
	}
	return c.set, true, nil
}

func (c *jwksCache) fetch(ctx context.Context, now time.Time) error {
	c.lastFetch = now
	c.fetches.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch JWKS: status %d", resp.StatusCode)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return fmt.Errorf("parse JWKS: %w", err)
	}
	c.set = set
	c.expires = now.Add(maxAge(resp.Header))
	return nil
}

// maxAge is how long a response may be cached by its Cache-Control
// (RFC 9111 5.2.2): max-age less Age; no-store or no-cache mean not at all.
func maxAge(h http.Header) time.Duration {
	age := time.Duration(0)
	if a, err := strconv.Atoi(strings.TrimSpace(h.Get("Age"))); err == nil && a > 0 {
		age = time.Duration(a) * time.Second
	}
	found := false
	d := jwksDefaultMaxAge
	for _, part := range strings.Split(h.Get("Cache-Control"), ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n >= 0 {
				d, found = time.Duration(n)*time.Second, true
			}
		}
	}
	if found && age > 0 {
		d -= age
	}
	return max(d, 0)
}

// pinnedTransport trusts an https server whose certificate is one of those
// in the PEM file: the chart's helm test reaches the app by its Service
// name, which a certificate made for the public host need not carry.
func pinnedTransport(file string) (*http.Transport, error) {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--pinned-certificate: %w", err)
	}
	// The first certificate is the server's own (tls.crt holds it, then
	// the chain): only it is pinned, not the CAs after it.
	var pinned []byte
	for block, rest := pem.Decode(pemBytes); block != nil && pinned == nil; block, rest = pem.Decode(rest) {
		if block.Type == "CERTIFICATE" {
			pinned = block.Bytes
		}
	}
	if pinned == nil {
		return nil, fmt.Errorf("--pinned-certificate: %s holds no PEM certificate", file)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is not checked against roots; the leaf must be pinned.
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection pins the server's certificate
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server presented no certificate")
			}
			leaf := cs.PeerCertificates[0]
			if bytes.Equal(leaf.Raw, pinned) {
				return nil
			}
			return fmt.Errorf("the server's certificate (subject %q) is not the one of --pinned-certificate %s", leaf.Subject.String(), file)
		},
	}
	return tr, nil
}
