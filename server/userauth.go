package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/apperr"
)

// The /api/user/authenticate dialect (seed 002): one login call that
// answers with the user's profile, both tokens and their expiry times.

type userAuthBody struct {
	AccessToken            string `json:"accessToken,omitempty"`
	Email                  string `json:"email,omitempty"`
	FullName               string `json:"fullName,omitempty"`
	AccessTokenExpiryTime  string `json:"accessTokenExpiryTime,omitempty"`
	RefreshToken           string `json:"refreshToken,omitempty"`
	RefreshTokenExpiryTime string `json:"refreshTokenExpiryTime,omitempty"`
	ResponseKey            string `json:"responseKey"`
	ResponseMessage        string `json:"responseMessage"`
	Role                   int    `json:"role,omitempty"`
	UserName               string `json:"userName,omitempty"`
}

func (s *Server) mountUserAuth(e *gin.Engine) {
	e.POST("/api/user/authenticate", s.dialect("userauth"), s.userAuthenticate)
}

func (s *Server) userAuthenticate(c *gin.Context) {
	b, err := readBody(c.Request)
	if err != nil {
		s.userAuthError(c, err)
		return
	}
	p := problems{}
	user, pw := b.requiredStr("userName", p), b.requiredStr("password", p)
	if len(p) > 0 {
		s.userAuthError(c, apperr.InvalidFields(p))
		return
	}
	g, err := s.accounts.Login(c.Request.Context(), user, pw)
	if err != nil {
		s.userAuthError(c, err)
		return
	}
	c.JSON(http.StatusOK, userAuthBody{
		AccessToken:            g.AccessToken,
		Email:                  g.User.Email,
		FullName:               g.User.Name,
		AccessTokenExpiryTime:  isoUTC(g.AccessExpiresAt),
		RefreshToken:           g.RefreshToken,
		RefreshTokenExpiryTime: isoUTC(g.RefreshExpiresAt),
		ResponseKey:            "SUCCESS",
		ResponseMessage:        "Successful request",
		Role:                   int(g.User.Role),
		UserName:               g.User.Username,
	})
}

// isoUTC is ISO 8601 in UTC ending in Z, as the seed shows.
func isoUTC(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func (s *Server) userAuthError(c *gin.Context, err error) {
	e := classify(err)
	status, key := statusOf[e.Code], "INTERNAL_ERROR"
	switch e.Code {
	case apperr.Unauthorized:
		key, e.Message = "INVALID_CREDENTIALS", "Invalid user name or password"
	case apperr.BadRequest, apperr.Invalid:
		status, key = http.StatusBadRequest, "INVALID_REQUEST"
	case apperr.TooLarge:
		key = "INVALID_REQUEST"
	case apperr.TooManyRequests:
		key = "TOO_MANY_REQUESTS"
		c.Header("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds())))
	case apperr.Unavailable:
		key = "SERVICE_UNAVAILABLE"
		s.logFailure(c, err)
	default:
		s.logFailure(c, err)
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	c.AbortWithStatusJSON(status, userAuthBody{ResponseKey: key, ResponseMessage: e.Message})
}
