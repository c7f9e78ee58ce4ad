// Package apperr is ideapool's one application error type: a code that the
// HTTP layer maps to a status, a message safe to show the client, and,
// optionally, the fields that were wrong.
package apperr

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Code classifies an error for clients. Each code maps to exactly one HTTP
// status in the server's table.
type Code string

// The codes, in the order of the HTTP table.
const (
	BadRequest      Code = "bad_request"       // malformed body or parameters
	Unauthorized    Code = "unauthorized"      // missing, invalid or expired credentials
	Forbidden       Code = "forbidden"         // authenticated but not allowed
	NotFound        Code = "not_found"         // no such resource (or not the caller's)
	Conflict        Code = "conflict"          // uniqueness rule violated
	TooLarge        Code = "request_too_large" // body over the limit
	Invalid         Code = "invalid"           // well-formed but invalid values
	TooManyRequests Code = "too_many_requests" // throttled
	Unavailable     Code = "unavailable"       // a dependency is down; retry later
	Internal        Code = "internal"          // our bug; details only in the log
)

// Error is an error a client may see.
type Error struct {
	Code    Code
	Message string
	// Fields maps a request field to what is wrong with it (for Invalid,
	// and for Conflict: the field whose value is taken).
	Fields map[string]string
	// RetryAfter is set for TooManyRequests.
	RetryAfter time.Duration
	// Err is the underlying cause, logged but never shown.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an Error with a code and a client-facing message.
func New(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Newf is New with formatting.
func Newf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidFields reports field-level validation failures.
func InvalidFields(fields map[string]string) *Error {
	return &Error{Code: Invalid, Message: "invalid fields: " + joinKeys(fields), Fields: fields}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// CodeOf returns the code of err, Internal when err carries none.
func CodeOf(err error) Code {
	if e, ok := As(err); ok {
		return e.Code
	}
	return Internal
}

func joinKeys(m map[string]string) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
