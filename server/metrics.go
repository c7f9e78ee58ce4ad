package server

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ideapool/ideapool/internal/token"
)

// httpMetrics are the API's request metrics:
//
//	ideapool_http_requests_total{route,method,status}
//	ideapool_http_request_duration_seconds{route,method,status}
//	ideapool_token_verifications_total{result}
//	ideapool_jwks_requests_total{code}
//	ideapool_tokens_signed_total{kid,kind} (read from Tokens at each scrape)
type httpMetrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	verifications *prometheus.CounterVec
	jwks          *prometheus.CounterVec
}

// Results of ideapool_token_verifications_total.
const (
	verifyOK           = "ok"
	verifyExpired      = "expired"
	verifyUnknownKID   = "unknown_kid"
	verifyBadSignature = "bad_signature"
	verifyRevoked      = "revoked"
	verifyMalformed    = "malformed"
)

// verificationResult names why an access token was accepted or refused,
// from the sentinel its error wraps.
func verificationResult(err error) string {
	switch {
	case err == nil:
		return verifyOK
	case errors.Is(err, token.ErrExpired):
		return verifyExpired
	case errors.Is(err, token.ErrUnknownKey):
		return verifyUnknownKID
	case errors.Is(err, token.ErrBadSignature):
		return verifyBadSignature
	case errors.Is(err, errSessionRevoked):
		return verifyRevoked
	default: // token.ErrMalformed; VerifyAccess returns nothing else
		return verifyMalformed
	}
}

func newHTTPMetrics(reg prometheus.Registerer, tokens Tokens) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ideapool_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ideapool_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route pattern, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ideapool_token_verifications_total",
			Help: "Access tokens the API checked, by result: ok, expired, unknown_kid, bad_signature, revoked (the session ended), malformed.",
		}, []string{"result"}),
		jwks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ideapool_jwks_requests_total",
			Help: "Requests of the JWKS, by status code: 200 sent the keys, 304 confirmed a cached copy.",
		}, []string{"code"}),
	}
	for _, r := range []string{verifyOK, verifyExpired, verifyUnknownKID, verifyBadSignature, verifyRevoked, verifyMalformed} {
		m.verifications.WithLabelValues(r)
	}
	for _, code := range []int{200, 304} {
		m.jwks.WithLabelValues(strconv.Itoa(code))
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.verifications, m.jwks, &signedCollector{tokens: tokens}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// signedCollector exports the tokens each key of the current keyset signed:
//
//	ideapool_tokens_signed_total{kid,kind}
//
// The counts live with the keyset in the token manager, so a kid that
// leaves the keyset leaves the metrics with it: the series are bounded by
// the keyset, which holds a handful of keys.
type signedCollector struct{ tokens Tokens }

var signedDesc = prometheus.NewDesc("ideapool_tokens_signed_total",
	"Tokens signed, by signing key (kid) and kind (access, id); a kid is dropped when it leaves the keyset.",
	[]string{"kid", "kind"}, nil)

func (c *signedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- signedDesc }

func (c *signedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, k := range c.tokens.SignedByKey() {
		ch <- prometheus.MustNewConstMetric(signedDesc, prometheus.CounterValue, float64(k.Access), k.KeyID, "access")
		ch <- prometheus.MustNewConstMetric(signedDesc, prometheus.CounterValue, float64(k.ID), k.KeyID, "id")
	}
}

// AccountMetrics counts what the account core reports, by dialect:
//
//	ideapool_tokens_issued_total{dialect,kind}
//	ideapool_login_failures_total{dialect,reason}
//	ideapool_refresh_token_reuse_total{dialect}
//	ideapool_cleanup_deleted_total{table}
type AccountMetrics struct {
	issued   *prometheus.CounterVec
	failures *prometheus.CounterVec
	reuse    *prometheus.CounterVec
	cleanup  *prometheus.CounterVec
}

// NewAccountMetrics registers the account metrics on reg.
func NewAccountMetrics(reg prometheus.Registerer) (*AccountMetrics, error) {
	m := &AccountMetrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ideapool_tokens_issued_total",
			Help: "Tokens issued, by dialect and kind (access, refresh, id).",
		}, []string{"dialect", "kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ideapool_login_failures_total",
			Help: "Failed logins, by dialect and reason (invalid_credentials: unknown account, wrong password or disabled alike; throttled; client_assertion).",
		}, []string{"dialect", "reason"}),
		reuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ideapool_refresh_token_reuse_total",
			Help: "Rotated-out refresh tokens presented again; each revoked its session.",
		}, []string{"dialect"}),
		cleanup: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ideapool_cleanup_deleted_total",
			Help: "Records the periodic cleanup deleted, by table (sessions, refresh_tokens, login_failures, client_assertions).",
		}, []string{"table"}),
	}
	for _, c := range []prometheus.Collector{m.issued, m.failures, m.reuse, m.cleanup} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register account metrics: %w", err)
		}
	}
	return m, nil
}

// TokenIssued counts one token of kind.
func (m *AccountMetrics) TokenIssued(dialect, kind string) {
	m.issued.WithLabelValues(dialect, kind).Inc()
}

// LoginFailed counts one failed login.
func (m *AccountMetrics) LoginFailed(dialect, reason string) {
	m.failures.WithLabelValues(dialect, reason).Inc()
}

// RefreshReuse counts one detected refresh token reuse.
func (m *AccountMetrics) RefreshReuse(dialect string) { m.reuse.WithLabelValues(dialect).Inc() }

// CleanupDeleted counts records the cleanup deleted from table.
func (m *AccountMetrics) CleanupDeleted(table string, n int) {
	m.cleanup.WithLabelValues(table).Add(float64(n))
}

// keyCollector exports the active signing key as an info metric:
//
//	ideapool_active_signing_key_info{kid}
type keyCollector struct {
	desc   *prometheus.Desc
	active func() string
}

// RegisterActiveKey registers ideapool_active_signing_key_info, read from
// active at each scrape.
func RegisterActiveKey(reg prometheus.Registerer, active func() string) error {
	c := &keyCollector{
		desc:   prometheus.NewDesc("ideapool_active_signing_key_info", "The key id (kid) of the key that signs new tokens.", []string{"kid"}, nil),
		active: active,
	}
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("register key metric: %w", err)
	}
	return nil
}

func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	if kid := c.active(); kid != "" {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, kid)
	}
}
