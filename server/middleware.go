package server

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/randid"
)

const requestIDKey = "request_id"

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// withRequestID takes a well-formed X-Request-Id from the client or makes one.
func (s *Server) withRequestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !requestIDRE.MatchString(id) {
		id, _ = randid.New(s.rand, 20)
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

// securityHeaders sets the seed's headers on every response.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("X-XSS-Protection", "1; mode=block")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'self'")
	h.Set("Cache-Control", "no-store")
	c.Next()
}

// dialect tags the request context with the API dialect, the client
// address and the request id, for the core's throttle, metrics and audit
// log.
func (s *Server) dialect(name string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := accounts.WithDialect(c.Request.Context(), name)
		ctx = accounts.WithClientAddr(ctx, s.clientAddrs.of(c.Request))
		c.Request = c.Request.WithContext(accounts.WithRequestID(ctx, requestID(c)))
		c.Next()
	}
}

// withTimeout bounds the work of one request, database waits included.
func (s *Server) withTimeout(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.requestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// observe logs and measures every request by its route pattern.
func (s *Server) observe(c *gin.Context) {
	start := s.now()
	c.Next()
	elapsed := s.now().Sub(start)
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	method := methodLabel(c.Request.Method)
	s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(route, method, strconv.Itoa(status)).Observe(elapsed.Seconds())
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.LogAttrs(c.Request.Context(), level, "request",
		slog.String("request_id", requestID(c)),
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Duration("duration", elapsed),
		slog.String("remote_addr", s.clientAddrs.of(c.Request)),
	)
}

// methodLabel is the method label of a request: a client may send any
// token as its method, and every new label value is a series kept for the
// life of the process, so methods HTTP does not define count as "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// recoverPanic turns a panic into a logged 500 instead of a dropped connection.
func (s *Server) recoverPanic(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.log.ErrorContext(c.Request.Context(), "panic serving request",
				"request_id", requestID(c), "panic", r, "stack", string(debug.Stack()))
			writeError(c, s.log, errPanic)
		}
	}()
	c.Next()
}
