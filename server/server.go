// Package server is ideapool's HTTP API: routing, middleware and one file
// per auth dialect, over the account and idea cores in internal/.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/ideas"
	"github.com/ideapool/ideapool/internal/token"
)

// Tokens verifies access tokens and publishes the keys that sign them.
type Tokens interface {
	VerifyAccess(tok string) (token.AccessClaims, error)
	JWKS() (body []byte, etag string)
	// SignedByKey counts the tokens each key of the keyset signed.
	SignedByKey() []token.KeyCount
	Issuer() string
	Algorithms() []string
	Ready() bool
}

// Pinger reports whether the database answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config holds the server's dependencies. Now, Rand and Registry are
// required; zero durations get defaults.
type Config struct {
	Accounts *accounts.Service
	Ideas    *ideas.Service
	Tokens   Tokens
	Database Pinger
	// Registry receives the HTTP and token metrics.
	Registry prometheus.Registerer
	Log      *slog.Logger
	Now      func() time.Time
	Rand     io.Reader
	// RequestTimeout bounds each request's work (default 10s).
	RequestTimeout time.Duration
	// TrustedProxies are the addresses or CIDRs of the reverse proxies
	// whose X-Forwarded-For gives the client address (its rightmost hop
	// that is not one of them); none by default. An entry that is neither
	// is an error.
	TrustedProxies []string
	// JWKSMaxAge is the Cache-Control max-age of the JWKS and discovery
	// document; it must be shorter than the keys' publish-ahead time.
	JWKSMaxAge time.Duration
}

// Server is the HTTP API.
type Server struct {
	accounts       *accounts.Service
	ideas          *ideas.Service
	tokens         Tokens
	db             Pinger
	log            *slog.Logger
	now            func() time.Time
	rand           io.Reader
	requestTimeout time.Duration
	jwksMaxAge     time.Duration
	clientAddrs    clientAddrs
	metrics        *httpMetrics
	engine         *gin.Engine
}

var errPanic = errors.New("panic while serving the request")

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Accounts == nil || cfg.Ideas == nil || cfg.Tokens == nil || cfg.Database == nil ||
		cfg.Registry == nil || cfg.Now == nil || cfg.Rand == nil {
		return nil, errors.New("server: Accounts, Ideas, Tokens, Database, Registry, Now and Rand are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.JWKSMaxAge == 0 {
		cfg.JWKSMaxAge = 5 * time.Minute
	}
	addrs, err := newClientAddrs(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	m, err := newHTTPMetrics(cfg.Registry, cfg.Tokens)
	if err != nil {
		return nil, err
	}
	s := &Server{accounts: cfg.Accounts, ideas: cfg.Ideas, tokens: cfg.Tokens, db: cfg.Database,
		log: cfg.Log, now: cfg.Now, rand: cfg.Rand, requestTimeout: cfg.RequestTimeout,
		jwksMaxAge: cfg.JWKSMaxAge, clientAddrs: addrs, metrics: m}
	s.engine = s.routes()
	return s, nil
}

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// Gin reads no proxy header: the client address is clientAddrs's
	// alone, so that one rule decides what the login throttle counts.
	_ = e.SetTrustedProxies(nil)
	e.ContextWithFallback = true
	e.Use(s.withRequestID, s.observe, s.recoverPanic, securityHeaders, s.withTimeout)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, s.log, apperr.Newf(apperr.NotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, errorBody{Error: "method_not_allowed",
			Message: "method " + c.Request.Method + " is not allowed on " + c.Request.URL.Path})
	})

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET(contract.JWKSPath, s.jwks)
	e.GET(contract.DiscoveryPath, s.discovery)

	s.mountIdeaPool(e)
	s.mountClients(e)
	s.mountJSONRPC(e)
	s.mountV1Auth(e)
	s.mountUserAuth(e)
	return e
}
