package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/contract"
)

// jwks serves the pre-encoded public keys with an ETag and a max-age
// shorter than the keys' publish-ahead time.
func (s *Server) jwks(c *gin.Context) {
	defer func() { s.metrics.jwks.WithLabelValues(strconv.Itoa(c.Writer.Status())).Inc() }()
	body, etag := s.tokens.JWKS()
	if body == nil {
		writeError(c, s.log, apperr.New(apperr.Unavailable, "signing keys are not loaded yet"))
		return
	}
	h := c.Writer.Header()
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.jwksMaxAge.Seconds())))
	h.Set("ETag", etag)
	if etagMatch(c.GetHeader("If-None-Match"), etag) {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, "application/jwk-set+json", body)
}

// etagMatch implements If-None-Match's weak comparison.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// discovery serves the OpenID Connect discovery document.
func (s *Server) discovery(c *gin.Context) {
	iss := s.tokens.Issuer()
	c.Header("Cache-Control", "public, max-age="+strconv.Itoa(int(s.jwksMaxAge.Seconds())))
	c.JSON(http.StatusOK, gin.H{
		"issuer":                                iss,
		"jwks_uri":                              contract.JWKSURI(iss),
		"response_types_supported":              []string{"token", "id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": s.tokens.Algorithms(),
		"token_endpoint_auth_signing_alg_values_supported": accounts.ClientAssertionAlgorithms,
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "jti", "sid", "email", "name", "auth_time", "email_verified",
			"preferred_username", "groups", "client_id"},
	})
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz is 200 when the database answers and signing keys are loaded.
func (s *Server) readyz(c *gin.Context) {
	checks := gin.H{"database": "ok", "keys": "ok"}
	ready := true
	if err := s.db.Ping(c.Request.Context()); err != nil {
		checks["database"], ready = "unreachable", false
		s.log.WarnContext(c.Request.Context(), "readiness: database unreachable", "error", err)
	}
	if !s.tokens.Ready() {
		checks["keys"], ready = "not loaded", false
	}
	if !ready {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not ready", "checks": checks})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}
