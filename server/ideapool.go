package server

import (
	"crypto/md5" //nolint:gosec // Gravatar addresses are MD5 of the email by definition.
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/ideas"
)

// mountIdeaPool mounts the Idea Pool API (seed 003).
func (s *Server) mountIdeaPool(e *gin.Engine) {
	g := e.Group("", s.dialect("ideapool"))
	g.POST("/users", s.signup)
	g.POST("/access-tokens", s.login)
	g.POST("/access-tokens/refresh", s.refresh)
	auth := g.Group("", s.requireAccess)
	auth.DELETE("/access-tokens", s.logout)
	auth.GET("/me", s.me)
	auth.POST("/ideas", s.createIdea)
	auth.GET("/ideas", s.listIdeas)
	auth.PUT("/ideas/:id", s.updateIdea)
	auth.DELETE("/ideas/:id", s.deleteIdea)
}

type tokenPair struct {
	JWT          string `json:"jwt"`
	RefreshToken string `json:"refresh_token"`
}

func (s *Server) signup(c *gin.Context) {
	b, err := readBody(c.Request)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	p := problems{}
	req := accounts.SignupRequest{
		Email:    b.requiredStr("email", p),
		Name:     b.requiredStr("name", p),
		Password: b.requiredStr("password", p),
	}
	if u := b.str("username", p); u != nil {
		req.Username = *u
	}
	p.merge(req.Problems())
	if err := p.err(); err != nil {
		writeError(c, s.log, err)
		return
	}
	g, err := s.accounts.Signup(c.Request.Context(), req)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusCreated, tokenPair{JWT: g.AccessToken, RefreshToken: g.RefreshToken})
}

func (s *Server) login(c *gin.Context) {
	b, err := readBody(c.Request)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	p := problems{}
	email, pw := b.requiredStr("email", p), b.requiredStr("password", p)
	if err := p.err(); err != nil {
		writeError(c, s.log, err)
		return
	}
	g, err := s.accounts.Login(c.Request.Context(), email, pw)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusCreated, tokenPair{JWT: g.AccessToken, RefreshToken: g.RefreshToken})
}

func (s *Server) refresh(c *gin.Context) {
	b, err := readBody(c.Request)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	p := problems{}
	rt := b.requiredStr("refresh_token", p)
	if err := p.err(); err != nil {
		writeError(c, s.log, err)
		return
	}
	g, err := s.accounts.Refresh(c.Request.Context(), rt, accounts.KeepRefreshToken)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"jwt": g.AccessToken})
}

func (s *Server) logout(c *gin.Context) {
	b, err := readBody(c.Request)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	p := problems{}
	rt := b.requiredStr("refresh_token", p)
	if err := p.err(); err != nil {
		writeError(c, s.log, err)
		return
	}
	if err := s.accounts.Logout(c.Request.Context(), claimsOf(c).Subject, rt); err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) me(c *gin.Context) {
	u, err := s.accounts.User(c.Request.Context(), claimsOf(c).Subject)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"email": u.Email, "name": u.Name, "avatar_url": gravatar(u.Email)})
}

// gravatar is the avatar address of an email, as Gravatar documents it.
func gravatar(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email)))) //nolint:gosec // see import
	return "https://www.gravatar.com/avatar/" + hex.EncodeToString(sum[:]) + "?d=mm&s=200"
}

// ideaInput binds and validates an idea body, reporting every bad field.
func ideaInput(c *gin.Context) (ideas.Input, error) {
	b, err := readBody(c.Request)
	if err != nil {
		return ideas.Input{}, err
	}
	p := problems{}
	in := ideas.Input{
		Content:    b.str("content", p),
		Impact:     b.integer("impact", p),
		Ease:       b.integer("ease", p),
		Confidence: b.integer("confidence", p),
	}
	if err := in.Validate(); err != nil {
		if e, ok := apperr.As(err); ok {
			p.merge(e.Fields)
		}
	}
	return in, p.err()
}

func (s *Server) createIdea(c *gin.Context) {
	in, err := ideaInput(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	i, err := s.ideas.Create(c.Request.Context(), claimsOf(c).Subject, in)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	writeIdeaJSON(c, s.log, http.StatusCreated, i.AppendJSON)
}

func (s *Server) updateIdea(c *gin.Context) {
	in, err := ideaInput(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	i, err := s.ideas.Update(c.Request.Context(), claimsOf(c).Subject, c.Param("id"), in)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	writeIdeaJSON(c, s.log, http.StatusOK, i.AppendJSON)
}

func (s *Server) deleteIdea(c *gin.Context) {
	if err := s.ideas.Delete(c.Request.Context(), claimsOf(c).Subject, c.Param("id")); err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) listIdeas(c *gin.Context) {
	// Go's query parsing drops what it cannot parse (page=3;x would be no
	// page at all): refuse it instead.
	if _, err := url.ParseQuery(c.Request.URL.RawQuery); err != nil {
		writeError(c, s.log, apperr.InvalidFields(map[string]string{"page": "the query string is malformed: send ?page=N"}))
		return
	}
	page := 1
	if vs, ok := c.GetQueryArray("page"); ok {
		n, err := strconv.Atoi(vs[0])
		if err != nil || n < 1 || len(vs) > 1 {
			writeError(c, s.log, apperr.InvalidFields(map[string]string{"page": "must be one integer greater than 0"}))
			return
		}
		page = n
	}
	list, err := s.ideas.Page(c.Request.Context(), claimsOf(c).Subject, page)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	writeIdeaJSON(c, s.log, http.StatusOK, func(b []byte) ([]byte, error) { return ideas.AppendPageJSON(b, list) })
}

// jsonContentType is what gin's c.JSON sends.
const jsonContentType = "application/json; charset=utf-8"

// writeIdeaJSON writes a body encoded by hand (ideas.Idea.AppendJSON), the
// hottest responses of the API, without reflection.
func writeIdeaJSON(c *gin.Context, log *slog.Logger, status int, encode func([]byte) ([]byte, error)) {
	buf := ideaBodies.Get().(*[]byte)
	body, err := encode((*buf)[:0])
	if err != nil {
		writeError(c, log, fmt.Errorf("encode ideas: %w", err))
		return
	}
	c.Data(status, jsonContentType, body) // copied into the connection's buffer before it returns
	if cap(body) <= 64<<10 {
		*buf = body[:0]
		ideaBodies.Put(buf)
	}
}

// ideaBodies are buffers of idea bodies, reused: a page is about 2 KiB, and
// every authenticated read writes one.
var ideaBodies = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
