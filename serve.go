package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/ideas"
	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/keysource"
	"github.com/ideapool/ideapool/internal/password"
	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/token"
	"github.com/ideapool/ideapool/server"
)

// serveConfig is what "ideapool serve" is told by flags and environment.
type serveConfig struct {
	listen           string
	metricsListen    string
	database         string
	keys             string
	config           string
	issuer           string
	accessTTL        time.Duration
	refreshTTL       time.Duration
	idTTL            time.Duration
	idAudience       string
	reuseGrace       time.Duration
	jwksMaxAge       time.Duration
	publishAhead     time.Duration
	clockSkew        time.Duration
	trustedProxies   string
	tlsCertFile      string
	tlsKeyFile       string
	hashConcurrency  int
	keyAlgorithm     string
	rotationInterval time.Duration
	logLevel         string
	shutdownTimeout  time.Duration
	shutdownDelay    time.Duration
	pprof            bool
	cleanupInterval  time.Duration
}

func (c *serveConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.listen, contract.FlagListen, ":8080", "address of the HTTP API")
	fs.StringVar(&c.metricsListen, contract.FlagMetricsListen, ":9090", "address of the Prometheus /metrics endpoint, kept off the API port; always plain HTTP (scraped in-cluster), also when the API serves TLS")
	fs.StringVar(&c.database, contract.FlagDatabase, "sqlite:data/ideapool.db", "database: sqlite:PATH, or a postgres:// URL")
	fs.StringVar(&c.keys, contract.FlagKeys, "file:data/keyset.json", "where the signing keyset lives: file:PATH (created with mode 0600 if missing, rotated and reloaded when it changes), or kubernetes:NAMESPACE/SECRET (written and rotated by the operator, watched)")
	fs.StringVar(&c.config, contract.FlagConfig, "", "where token lifetimes may change while running: kubernetes:NAMESPACE/CONFIGMAP or file:PATH (a JSON object with the same keys), watched; empty means the flags only")
	fs.StringVar(&c.issuer, contract.FlagIssuer, "http://localhost:8080", "iss of every token and base URL of the discovery document and JWKS")
	fs.DurationVar(&c.accessTTL, contract.FlagAccessTokenTTL, 10*time.Minute, "access token lifetime")
	fs.DurationVar(&c.refreshTTL, contract.FlagRefreshTokenTTL, 720*time.Hour, "refresh token lifetime, absolute from login: refreshing does not extend it")
	fs.DurationVar(&c.idTTL, contract.FlagIDTokenTTL, time.Hour, "OpenID Connect ID token lifetime (the /v1/auth dialect)")
	fs.StringVar(&c.idAudience, "id-token-audience", "ideapool", "aud of ID tokens")
	fs.DurationVar(&c.reuseGrace, contract.FlagRefreshReuseGrace, 5*time.Second, "how long a rotated-out refresh token may be retried to get the same successor back (0 disables)")
	fs.DurationVar(&c.jwksMaxAge, contract.FlagJWKSMaxAge, 5*time.Minute, "Cache-Control max-age of the JWKS; keys are published at least this plus 1m clock skew before they sign")
	fs.DurationVar(&c.publishAhead, contract.FlagKeyPublishAhead, time.Hour, "least time a new key is published before it signs (at least --jwks-max-age plus --clock-skew)")
	fs.DurationVar(&c.clockSkew, contract.FlagClockSkew, time.Minute, "largest clock difference assumed between replicas and verifiers")
	fs.StringVar(&c.trustedProxies, contract.FlagTrustedProxies, "", "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For gives the client address (for the per-address login throttle); empty trusts none")
	fs.StringVar(&c.tlsCertFile, contract.FlagTLSCertFile, "", "PEM certificate chain: with --tls-key-file, the API (and /readyz) is served over TLS 1.2+ with HTTP/2; a renewed pair is picked up within seconds, without a restart. The metrics listener stays plain HTTP")
	fs.StringVar(&c.tlsKeyFile, contract.FlagTLSKeyFile, "", "PEM private key of --tls-cert-file (both or neither)")
	fs.IntVar(&c.hashConcurrency, "password-hash-concurrency", 0, "password hashes run at once (19 MiB each, kept and reused); 0 means one per CPU, fewer if the container's memory limit leaves less than 19 MiB for each over 88 MiB (the binary's pages and a heap). Each gets a scheduler slot (GOMAXPROCS) of its own, so hashing cannot crowd out other requests")
	fs.StringVar(&c.keyAlgorithm, contract.FlagKeyAlgorithm, "RS256", "algorithm of new signing keys: RS256, ES256 or EdDSA")
	fs.DurationVar(&c.rotationInterval, contract.FlagKeyRotationInterval, 720*time.Hour, "how often the server rotates its own key file (at least --key-publish-ahead)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long SIGTERM waits for in-flight requests")
	fs.DurationVar(&c.cleanupInterval, "cleanup-interval", 10*time.Minute, "how often ended sessions (with their refresh tokens), login failures older than the throttle window and used client-assertion ids are deleted, in small batches; one replica at a time does it (at least 1s)")
	fs.DurationVar(&c.shutdownDelay, contract.FlagShutdownDelay, 0, "how long SIGTERM keeps serving, each answer with Connection: close, before it stops listening, so that load balancers and kube-proxy stop sending new connections first; the operator sets 5s")
	fs.BoolVar(&c.pprof, "pprof", false, "also serve Go's profiles (net/http/pprof) under /debug/pprof/ on the metrics listener; off by default, since profiles show internals: keep that port private")
}

// validate checks the flags once and names the bad one.
func (c *serveConfig) validate() error {
	switch {
	case c.accessTTL <= 0:
		return errors.New("--access-token-ttl must be positive")
	case c.refreshTTL <= 0:
		return errors.New("--refresh-token-ttl must be positive")
	case c.refreshTTL < c.accessTTL:
		return errors.New("--refresh-token-ttl must not be shorter than --access-token-ttl")
	case c.hashConcurrency < 0:
		return errors.New("--password-hash-concurrency must be 0 (one per CPU) or more")
	case c.idTTL <= 0:
		return errors.New("--id-token-ttl must be positive")
	case c.reuseGrace < 0 || c.reuseGrace > time.Minute:
		return errors.New("--refresh-reuse-grace must be between 0s and 1m")
	case (c.tlsCertFile == "") != (c.tlsKeyFile == ""):
		return errors.New("--tls-cert-file and --tls-key-file go together: set both or neither")
	case c.cleanupInterval < time.Second:
		return errors.New("--cleanup-interval must be at least 1s")
	case c.shutdownDelay < 0:
		return errors.New("--shutdown-delay must not be negative")
	case strings.TrimSpace(c.idAudience) == "":
		return errors.New("--id-token-audience must not be empty")
	}
	if err := validIssuer(c.issuer); err != nil {
		return fmt.Errorf("--issuer %q: %w", c.issuer, err)
	}
	switch c.keyAlgorithm {
	case "RS256", "ES256", "EdDSA":
	default:
		return fmt.Errorf("--key-algorithm %q: use RS256, ES256 or EdDSA", c.keyAlgorithm)
	}
	return nil
}

// validIssuer is OpenID Connect's rule for an issuer: an http(s) URL with a
// host, and no query or fragment (verifiers compare it byte for byte and
// append the well-known paths to it).
func validIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http:// or https:// URL")
	case u.Host == "":
		return errors.New("has no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(issuer, "#"):
		return errors.New("must have no query or fragment")
	case u.User != nil:
		return errors.New("must not carry a user name or password")
	}
	return nil
}

func (c *serveConfig) policy() keyset.Policy {
	return keyset.Policy{
		Algorithm:        keyset.Algorithm(c.keyAlgorithm),
		RSABits:          2048,
		RotationInterval: c.rotationInterval,
		PublishAhead:     c.publishAhead,
		JWKSMaxAge:       c.jwksMaxAge,
		ClockSkew:        c.clockSkew,
		MaxTokenTTL:      max(c.accessTTL, c.idTTL),
	}
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.register(fs)
	if err := parseFlags(fs, args, "Runs the HTTP API: the Idea Pool API, the auth dialects, OIDC discovery\nand the JWKS, with Prometheus metrics on a separate listener.", stdout, stderr); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.logLevel)
	if err != nil {
		return err
	}
	policy := cfg.policy()
	if err := policy.Validate(); err != nil {
		return fmt.Errorf("key policy: %w", err)
	}
	certs, err := openServingCert(&cfg, log)
	if err != nil {
		return err
	}

	db, err := store.Open(ctx, cfg.database, log)
	if err != nil {
		return err
	}
	defer db.Close()

	tokens, err := token.NewManager(token.Config{Issuer: cfg.issuer, JWKSMaxAge: policy.JWKSMaxAge, Now: time.Now, Rand: rand.Reader})
	if err != nil {
		return err
	}
	var kube kubeConnection
	keys, err := openKeySource(&cfg, policy, &kube, log)
	if err != nil {
		return err
	}
	ks, err := keys.Load(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	if err := tokens.SetKeyset(ks); err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	signing := keysource.NewSigningWatch(tokens.ActiveKeyID, log)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "ideapool"}))
	acctMetrics, err := server.NewAccountMetrics(reg)
	if err != nil {
		return err
	}
	if err := server.RegisterActiveKey(reg, tokens.ActiveKeyID); err != nil {
		return err
	}
	cpus := runtime.GOMAXPROCS(0)
	mem := planMemory(cfg.hashConcurrency, cpus, cgroupMemoryLimit(log), goMemLimitInEnv())
	applyMemoryPlan(mem, cpus)
	hashSlots := mem.hashSlots
	hasher, err := password.NewHasher(password.OWASP, rand.Reader, hashSlots)
	if err != nil {
		return err
	}
	acct, err := accounts.New(accounts.Config{Store: db, Signer: tokens, Hasher: hasher,
		Lifetimes:  accounts.Lifetimes{Access: cfg.accessTTL, Refresh: cfg.refreshTTL, ID: cfg.idTTL, ReuseGrace: cfg.reuseGrace},
		IDAudience: cfg.idAudience,
		Observer:   acctMetrics, Now: time.Now, Rand: rand.Reader, Log: log})
	if err != nil {
		return err
	}
	if err := acct.SyncRevocations(ctx); err != nil {
		return err
	}
	runSettings, err := openSettings(ctx, &cfg, &kube, acct, log)
	if err != nil {
		return err
	}
	api, err := server.New(server.Config{Accounts: acct, Ideas: ideas.New(db, time.Now, rand.Reader),
		Tokens: tokens, Database: db, Registry: reg, Log: log, Now: time.Now, Rand: rand.Reader,
		JWKSMaxAge: policy.JWKSMaxAge, TrustedProxies: splitList(cfg.trustedProxies)})
	if err != nil {
		return err
	}

	apiSrv := newHTTPServer(cfg.listen, api, log)
	if certs != nil {
		apiSrv.TLSConfig = certs.TLSConfig()
		if err := registerCertExpiry(reg, certs); err != nil {
			return err
		}
	}
	metricsMux := http.NewServeMux()
	metricsMux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	metricsSrv := newHTTPServer(cfg.metricsListen, metricsMux, log)
	if cfg.pprof {
		mountPprof(metricsMux)
		// A CPU profile streams for its ?seconds=; net/http/pprof refuses
		// one longer than the write timeout.
		metricsSrv.WriteTimeout = maxProfile + 10*time.Second
	}

	var lc net.ListenConfig
	apiLn, err := lc.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	metricsLn, err := lc.Listen(ctx, "tcp", cfg.metricsListen)
	if err != nil {
		apiLn.Close()
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	log.Info("serving", "listen", apiLn.Addr().String(), "metrics_listen", metricsLn.Addr().String(),
		"issuer", cfg.issuer, "active_kid", tokens.ActiveKeyID(), "pprof", cfg.pprof, "password_hash_slots", hashSlots, "gomaxprocs", runtime.GOMAXPROCS(0),
		"memory_limit_bytes", mem.cgroupLimit, "go_memory_limit_bytes", goMemoryLimit(), "version", version)

	if _, err := releaseStartupPages(); err != nil {
		// Only memory is at stake (kernels before 5.4 lack MADV_PAGEOUT).
		log.Info("startup pages kept resident", "error", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveUntilDone(gctx, apiSrv, apiLn, cfg.shutdownDelay, cfg.shutdownTimeout) })
	g.Go(func() error {
		return serveUntilDone(gctx, metricsSrv, metricsLn, cfg.shutdownDelay, cfg.shutdownTimeout)
	})
	g.Go(func() error { acct.RunRevocationSync(gctx, time.Second); return nil })
	g.Go(func() error { signing.Run(gctx, time.Second); return nil })
	if certs != nil {
		g.Go(func() error { certs.Run(gctx); return nil })
	}
	g.Go(func() error { acct.RunCleanup(gctx, cfg.cleanupInterval); return nil })
	if runSettings != nil {
		g.Go(func() error { return runSettings(gctx) })
	}
	g.Go(func() error {
		err := keys.Run(gctx, func(ks keyset.Keyset) {
			if err := tokens.SetKeyset(ks); err != nil {
				log.Error("keyset rejected; keeping the previous one", "error", err)
				return
			}
			log.Info("keyset loaded", "active_kid", tokens.ActiveKeyID())
			signing.Check()
		})
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	})
	err = g.Wait()
	log.Info("stopped")
	return err
}

// maxProfile is the longest CPU or trace profile --pprof serves.
const maxProfile = 5 * time.Minute

// mountPprof adds net/http/pprof's handlers to mux, which (unlike the
// package's import side effect) touches no global mux.
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

func newHTTPServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveUntilDone serves until ctx ends, keeps serving for delay (a pod
// being deleted still gets connections until kube-proxy and load balancers
// have dropped it), answering each request with Connection: close (a GOAWAY
// in HTTP/2) so that its client leaves with the answer and reconnects
// elsewhere, then lets in-flight requests finish within grace. Idle
// keep-alive connections stay open during the delay: closing them at once
// races a client sending on one, and a POST on a closed connection fails
// without retry. A server with a TLSConfig serves TLS (HTTP/2 included)
// with its certificate hook.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, delay, grace time.Duration) error {
	var draining atomic.Bool
	if h := srv.Handler; delay > 0 && h != nil {
		srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() {
				w.Header().Set("Connection", "close")
			}
			h.ServeHTTP(w, r)
		})
	}
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", srv.Addr, err)
	case <-ctx.Done():
	}
	if delay > 0 {
		draining.Store(true)
		select {
		case err := <-errc:
			return fmt.Errorf("serve %s: %w", srv.Addr, err)
		case <-time.After(delay):
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down %s: %w", srv.Addr, err)
	}
	return nil
}

func runMigrate(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	database := fs.String(contract.FlagDatabase, "sqlite:data/ideapool.db", "database: sqlite:PATH, or a postgres:// URL")
	if err := parseFlags(fs, args, "Applies the embedded schema migrations to the database and exits.\n(serve applies them at start too.)", stdout, stderr); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	db, err := store.Open(ctx, *database, log)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = fmt.Fprintln(stdout, "migrations applied")
	return err
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
