package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/apperr"
)

// The /v1/auth dialect (seed 001): a Cognito-style login that answers with
// an ID token, an access token and a refresh token, rotated on every
// refresh.

type v1Tokens struct {
	IDToken      string `json:"idToken"`
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
}

type v1Body struct {
	StatusCode    int       `json:"statusCode"`
	StatusMessage string    `json:"statusMessage"`
	Tokens        *v1Tokens `json:"tokens,omitempty"`
	Error         string    `json:"error,omitempty"`
}

func (s *Server) mountV1Auth(e *gin.Engine) {
	g := e.Group("/v1/auth", s.dialect("v1auth"))
	g.POST("", s.v1Login)
	g.POST("/refreshtoken", s.v1Refresh)
}

func (s *Server) v1Login(c *gin.Context) {
	b, err := readBody(c.Request)
	if err != nil {
		s.v1Error(c, "Login failed", err)
		return
	}
	p := problems{}
	user, pw := b.requiredStr("username", p), b.requiredStr("password", p)
	if len(p) > 0 {
		s.v1Error(c, "Login failed", apperr.InvalidFields(p))
		return
	}
	g, err := s.accounts.Login(c.Request.Context(), user, pw)
	if err != nil {
		s.v1Error(c, "Login failed", err)
		return
	}
	s.v1Grant(c, g)
}

func (s *Server) v1Refresh(c *gin.Context) {
	b, err := readBody(c.Request)
	if err != nil {
		s.v1Error(c, "Failed to refresh token", err)
		return
	}
	p := problems{}
	rt := b.str("refreshtoken", p)
	if rt == nil || *rt == "" {
		c.JSON(http.StatusBadRequest, v1Body{StatusCode: http.StatusBadRequest, StatusMessage: "Missing refresh token"})
		return
	}
	g, err := s.accounts.Refresh(c.Request.Context(), *rt, accounts.RotateRefreshToken)
	if err != nil {
		s.v1Error(c, "Failed to refresh token", err)
		return
	}
	s.v1Grant(c, g)
}

func (s *Server) v1Grant(c *gin.Context, g accounts.Grant) {
	id, err := s.accounts.IDToken(c.Request.Context(), g)
	if err != nil {
		s.v1Error(c, "Login failed", err)
		return
	}
	c.JSON(http.StatusOK, v1Body{StatusCode: http.StatusOK, StatusMessage: "OK",
		Tokens: &v1Tokens{IDToken: id, AccessToken: g.AccessToken, RefreshToken: g.RefreshToken}})
}

// v1Error answers in the seed's shape. Wrong credentials and bad refresh
// tokens are the seed's 400s; throttling and outages keep their own status
// so that clients back off.
func (s *Server) v1Error(c *gin.Context, statusMessage string, err error) {
	e := classify(err)
	status, msg := http.StatusBadRequest, e.Message
	switch {
	case errors.Is(err, accounts.ErrRefreshInvalid) || errors.Is(err, accounts.ErrRefreshExpired):
		msg = "Invalid Refresh Token"
	case e.Code == apperr.Unauthorized:
		msg = "Incorrect username or password."
	case e.Code == apperr.TooManyRequests:
		status, statusMessage = http.StatusTooManyRequests, "Too many failed logins"
		c.Header("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds())))
	case e.Code == apperr.TooLarge:
		status = http.StatusRequestEntityTooLarge
	case e.Code == apperr.Unavailable || e.Code == apperr.Internal:
		status = statusOf[e.Code]
		s.logFailure(c, err)
	}
	c.AbortWithStatusJSON(status, v1Body{StatusCode: status, StatusMessage: statusMessage, Error: msg})
}
