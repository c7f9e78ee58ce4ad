package server

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/store"
)

// statusOf is the one table from application error codes to HTTP status.
var statusOf = map[apperr.Code]int{
	apperr.BadRequest:      http.StatusBadRequest,
	apperr.Unauthorized:    http.StatusUnauthorized,
	apperr.Forbidden:       http.StatusForbidden,
	apperr.NotFound:        http.StatusNotFound,
	apperr.Conflict:        http.StatusConflict,
	apperr.TooLarge:        http.StatusRequestEntityTooLarge,
	apperr.Invalid:         http.StatusUnprocessableEntity,
	apperr.TooManyRequests: http.StatusTooManyRequests,
	apperr.Unavailable:     http.StatusServiceUnavailable,
	apperr.Internal:        http.StatusInternalServerError,
}

// errorBody is the JSON body of every error of the Idea Pool API. The
// request id travels in the X-Request-Id header, so that two failures of the
// same kind have byte-identical bodies (no user enumeration by diffing).
type errorBody struct {
	Error   string            `json:"error"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// classify turns any error into an *apperr.Error a client may see. Errors
// without a code become Internal, or Unavailable when the database is down;
// their details stay in the log.
func classify(err error) *apperr.Error {
	if e, ok := apperr.As(err); ok {
		return e
	}
	if errors.Is(err, store.ErrUnavailable) {
		return &apperr.Error{Code: apperr.Unavailable, Message: "the database is unavailable; retry shortly", Err: err}
	}
	return &apperr.Error{Code: apperr.Internal, Message: "internal error; quote the X-Request-Id response header when reporting it", Err: err}
}

// writeError renders err as JSON and logs what the client does not see.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	e := classify(err)
	status := statusOf[e.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		logFailure(c, log, err)
	}
	if e.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(e.RetryAfter.Seconds())))
	}
	if e.Code == apperr.Unauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="ideapool"`)
	}
	c.AbortWithStatusJSON(status, errorBody{Error: string(e.Code), Message: e.Message, Fields: e.Fields})
}

// logFailure logs what a client is not shown.
func logFailure(c *gin.Context, log *slog.Logger, err error) {
	log.ErrorContext(c.Request.Context(), "request failed", "request_id", requestID(c), "route", c.FullPath(), "error", err)
}

func (s *Server) logFailure(c *gin.Context, err error) { logFailure(c, s.log, err) }
