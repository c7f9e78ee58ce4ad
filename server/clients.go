package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/accounts"
)

// The API clients of a user: machine clients that authenticate at the
// JSON-RPC dialect with a JWT they sign themselves.

func (s *Server) mountClients(e *gin.Engine) {
	g := e.Group("/api-clients", s.dialect("ideapool"), s.requireAccess)
	g.POST("", s.createClient)
	g.GET("", s.listClients)
	g.DELETE("/:id", s.deleteClient)
}

type createdClient struct {
	accounts.Client
	// Secret is shown this once and never again.
	Secret string `json:"client_secret,omitempty"`
}

func (s *Server) createClient(c *gin.Context) {
	b, err := readBody(c.Request)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	p := problems{}
	name := b.requiredStr("name", p)
	key := b.rawObject("jwk", p)
	if err := p.err(); err != nil {
		writeError(c, s.log, err)
		return
	}
	client, secret, err := s.accounts.CreateClient(c.Request.Context(), callerOf(c), name, key)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusCreated, createdClient{Client: client, Secret: secret})
}

func (s *Server) listClients(c *gin.Context) {
	list, err := s.accounts.Clients(c.Request.Context(), callerOf(c))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, list)
}

func (s *Server) deleteClient(c *gin.Context) {
	if err := s.accounts.RevokeClient(c.Request.Context(), callerOf(c), c.Param("id")); err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Status(http.StatusNoContent)
}
