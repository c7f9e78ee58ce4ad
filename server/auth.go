package server

import (
	"errors"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/token"
)

const claimsKey = "access_claims"

var errSessionRevoked = errors.New("session revoked")

// accessToken reads the token from X-Access-Token (the seed's header) or
// Authorization: Bearer.
func accessToken(c *gin.Context) string {
	if t := strings.TrimSpace(c.GetHeader("X-Access-Token")); t != "" {
		return t
	}
	scheme, rest, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(rest)
	}
	return ""
}

// requireAccess lets the request through only with a valid access token.
func (s *Server) requireAccess(c *gin.Context) {
	tok := accessToken(c)
	if tok == "" {
		writeError(c, s.log, apperr.New(apperr.Unauthorized, "missing access token: send it in the X-Access-Token header or as Authorization: Bearer"))
		return
	}
	claims, err := s.tokens.VerifyAccess(tok)
	if err == nil && s.accounts.SessionRevoked(claims.SessionID) {
		err = errSessionRevoked
	}
	s.metrics.verifications.WithLabelValues(verificationResult(err)).Inc()
	if err != nil {
		writeError(c, s.log, apperr.New(apperr.Unauthorized, "invalid or expired access token: refresh it or log in again"))
		return
	}
	c.Set(claimsKey, claims)
	c.Next()
}

func claimsOf(c *gin.Context) token.AccessClaims {
	v, _ := c.Get(claimsKey)
	claims, _ := v.(token.AccessClaims)
	return claims
}

// callerOf is who the verified access token says makes the request.
func callerOf(c *gin.Context) accounts.Caller {
	claims := claimsOf(c)
	return accounts.Caller{UserID: claims.Subject, SessionID: claims.SessionID, ClientID: claims.ClientID}
}
