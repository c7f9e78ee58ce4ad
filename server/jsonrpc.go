package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/apperr"
)

// The JSON-RPC 2.0 dialect (seed 000): user.Authenticate, where an API
// client proves itself with a JWT it signed (RFC 7523), and user.Refresh,
// which rotates the refresh token. Both answer {jwt_access_token,
// refresh_token}. JSON-RPC errors travel with HTTP 200; only a body over
// the limit (413) and a call that needs no answer (204) use another status.

// The error codes. The JSON-RPC 2.0 ones and the seed's (-32003, -32019,
// -32020, -32606) keep their numbers and the seed's wording; the others
// are ours, one per reason a call is refused, in the implementation range
// -32000..-32099.
const (
	rpcParseError       = -32700 // the body is not JSON
	rpcInvalidRequest   = -32600 // not a valid Request object; an empty or too large batch; a body over 1 MiB
	rpcMethodNotFound   = -32601 // no such method
	rpcInternalError    = -32603 // our failure, or the database is down (data.detail says to retry); logged
	rpcInvalidArguments = -32606 // user.Refresh params are not a refresh token (seed's code)

	rpcUnknownClient      = -32001 // no such API client, revoked, or its owner disabled
	rpcBadSignature       = -32002 // the signature does not verify, a wrong alg, or a key-carrying header
	rpcClaimMissing       = -32003 // iss, sub, aud, exp, iat or jti absent; data.claim names it (seed's code)
	rpcWrongIssuer        = -32004 // iss or sub is not the client id
	rpcWrongAudience      = -32005 // aud does not name our issuer
	rpcLifetimeTooLong    = -32006 // exp - iat over 5 minutes
	rpcIssuedInFuture     = -32007 // iat more than 60 s ahead
	rpcReplayed           = -32008 // jti already used
	rpcMalformedAssertion = -32009 // no or garbled Authorization header, or a JWT that is not one
	rpcInvalidRefresh     = -32010 // refresh token unknown, revoked, or reused (which revokes its session)
	rpcNotYetValid        = -32011 // the client JWT's nbf is ahead
	rpcExpBeforeIat       = -32012 // the client JWT's exp is before its iat
	rpcTokenExpired       = -32019 // the client JWT's exp has passed (seed's code)
	rpcRefreshExpired     = -32020 // the session behind the refresh token has expired (seed's code)
)

// rpcMessages is the one message of each code.
var rpcMessages = map[int]string{
	rpcParseError:         "Parse error",
	rpcInvalidRequest:     "The JSON sent is not a valid Request object",
	rpcMethodNotFound:     "Method not found",
	rpcInternalError:      "Internal Server Error",
	rpcInvalidArguments:   "Invalid arguments",
	rpcUnknownClient:      "Unknown or revoked client",
	rpcBadSignature:       "Invalid JWT signature",
	rpcClaimMissing:       "Mandatory JWT Claim missing",
	rpcWrongIssuer:        "JWT iss and sub must be the client id",
	rpcWrongAudience:      "JWT aud must be this server's issuer",
	rpcLifetimeTooLong:    "JWT lifetime is over 5 minutes",
	rpcIssuedInFuture:     "JWT issued in the future",
	rpcReplayed:           "JWT already used",
	rpcMalformedAssertion: "Malformed client assertion",
	rpcInvalidRefresh:     "Invalid refresh token",
	rpcNotYetValid:        "JWT not yet valid",
	rpcExpBeforeIat:       "JWT expires before it was issued",
	rpcTokenExpired:       "Token has expired",
	rpcRefreshExpired:     "Refresh token has expired",
}

// assertionCodes maps the core's reasons for refusing a client JWT to codes.
var assertionCodes = map[accounts.AssertionReason]int{
	accounts.AssertionMalformed:      rpcMalformedAssertion,
	accounts.AssertionClaimMissing:   rpcClaimMissing,
	accounts.AssertionExpired:        rpcTokenExpired,
	accounts.AssertionUnknownClient:  rpcUnknownClient,
	accounts.AssertionBadSignature:   rpcBadSignature,
	accounts.AssertionWrongIssuer:    rpcWrongIssuer,
	accounts.AssertionWrongAudience:  rpcWrongAudience,
	accounts.AssertionTooLong:        rpcLifetimeTooLong,
	accounts.AssertionIssuedInFuture: rpcIssuedInFuture,
	accounts.AssertionReplayed:       rpcReplayed,
	accounts.AssertionNotYetValid:    rpcNotYetValid,
	accounts.AssertionExpBeforeIat:   rpcExpBeforeIat,
}

// maxBatch bounds the calls of one batch: each may cost a signature check
// and database writes.
const maxBatch = 20

const (
	methodAuthenticate = "user.Authenticate"
	methodRefresh      = "user.Refresh"
)

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"` // nil is null
}

type rpcError struct {
	Code    int           `json:"code"`
	Message string        `json:"message"`
	Data    *rpcErrorData `json:"data,omitempty"`
}

// rpcErrorData is error.data: always an object, so that clients can read it
// one way. Claim is set with -32003.
type rpcErrorData struct {
	Claim  string `json:"claim,omitempty"`
	Detail string `json:"detail,omitempty"`
}

type rpcTokens struct {
	AccessToken  string `json:"jwt_access_token"`
	RefreshToken string `json:"refresh_token"`
}

func newRPCError(code int, detail string) *rpcError {
	e := &rpcError{Code: code, Message: rpcMessages[code]}
	if detail != "" {
		e.Data = &rpcErrorData{Detail: detail}
	}
	return e
}

// rpcRequest is a well-formed Request object.
type rpcRequest struct {
	method string
	params json.RawMessage // nil when absent
	id     json.RawMessage // the raw string or number; nil when absent (a notification) or null
	notify bool
}

func (s *Server) mountJSONRPC(e *gin.Engine) {
	g := e.Group("/v2/jsonrpc", s.dialect("jsonrpc"))
	g.POST("/auth", s.jsonrpc)
}

func (s *Server) jsonrpc(c *gin.Context) {
	if c.Request.ContentLength > maxBody {
		s.rpcTooLarge(c)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			s.rpcTooLarge(c)
			return
		}
		s.rpcWrite(c, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: newRPCError(rpcParseError, "could not read the request body")})
		return
	}
	raw = trimJSONSpace(raw)
	// JSON text is UTF-8: an id with a stray byte would be echoed into an
	// answer that is not JSON.
	if !utf8.Valid(raw) || !json.Valid(raw) || tooDeep(raw) {
		s.rpcWrite(c, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: newRPCError(rpcParseError,
			fmt.Sprintf("the body is not valid UTF-8 JSON nested at most %d deep", maxJSONDepth))})
		return
	}
	if raw[0] != '[' {
		res, ok := s.rpcCall(c, raw)
		if !ok {
			c.Status(http.StatusNoContent)
			return
		}
		s.rpcWrite(c, http.StatusOK, res)
		return
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(raw, &batch); err != nil {
		// Valid JSON starting with '[' is an array; this is only a safeguard.
		s.rpcWrite(c, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: newRPCError(rpcParseError, "the body is not valid JSON")})
		return
	}
	switch {
	case len(batch) == 0:
		s.rpcWrite(c, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: newRPCError(rpcInvalidRequest, "empty batch")})
		return
	case len(batch) > maxBatch:
		s.rpcWrite(c, http.StatusOK, rpcResponse{JSONRPC: "2.0", Error: newRPCError(rpcInvalidRequest, fmt.Sprintf("batch too large: at most %d calls", maxBatch))})
		return
	}
	// In order, one after the other: two calls of a batch may depend on
	// each other's side effects (a jti used, a token rotated).
	out := make([]rpcResponse, 0, len(batch))
	for _, one := range batch {
		if res, ok := s.rpcCall(c, one); ok {
			out = append(out, res)
		}
	}
	if len(out) == 0 {
		c.Status(http.StatusNoContent)
		return
	}
	s.rpcWrite(c, http.StatusOK, out)
}

// rpcCall answers one call; ok is false for a notification, which gets no
// answer.
//
// Notifications are checked but not run: both methods exist only to hand
// out credentials, so running one unanswered would only burn them (a
// rotated refresh token the client never sees, a used jti, an orphan
// session).
func (s *Server) rpcCall(c *gin.Context, raw json.RawMessage) (res rpcResponse, ok bool) {
	req, rerr := parseRPCRequest(raw)
	res = rpcResponse{JSONRPC: "2.0", ID: req.id}
	if rerr != nil {
		res.Error = rerr
		return res, true
	}
	if req.notify {
		return rpcResponse{}, false
	}
	switch req.method {
	case methodAuthenticate:
		res.Result, res.Error = s.rpcAuthenticate(c)
	case methodRefresh:
		res.Result, res.Error = s.rpcRefresh(c, req.params)
	default:
		res.Error = newRPCError(rpcMethodNotFound, "methods: "+methodAuthenticate+", "+methodRefresh)
	}
	if res.Error != nil {
		res.Result = nil
	}
	return res, true
}

// parseRPCRequest checks a Request object. The id is returned whenever it
// could be read, so that even an invalid request is answered with it.
func parseRPCRequest(raw json.RawMessage) (rpcRequest, *rpcError) {
	var req rpcRequest
	var m map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return req, newRPCError(rpcInvalidRequest, "a request must be a JSON object")
	}
	id, hasID := m["id"]
	if hasID {
		switch kindOf(id) {
		case jsonString, jsonNumber:
			req.id = id
		case jsonNull:
		default:
			return req, newRPCError(rpcInvalidRequest, "id must be a string, a number or null")
		}
	}
	var version string
	if v, ok := m["jsonrpc"]; !ok || kindOf(v) != jsonString || json.Unmarshal(v, &version) != nil || version != "2.0" {
		return req, newRPCError(rpcInvalidRequest, `jsonrpc must be "2.0"`)
	}
	if v, ok := m["method"]; !ok || kindOf(v) != jsonString || json.Unmarshal(v, &req.method) != nil {
		return req, newRPCError(rpcInvalidRequest, "method must be a string")
	}
	if p, ok := m["params"]; ok {
		// user.Refresh judges its own params: the seed sends a bare string,
		// and any other wrong type is the seed's -32606.
		if k := kindOf(p); req.method != methodRefresh && k != jsonArray && k != jsonObject {
			return req, newRPCError(rpcInvalidRequest, "params must be an array or an object")
		}
		req.params = p
	}
	req.notify = !hasID
	return req, nil
}

// trimJSONSpace trims JSON's whitespace only, so that what is left is
// valid JSON exactly when the whole was.
func trimJSONSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

type jsonKind int

const (
	jsonInvalid jsonKind = iota
	jsonNull
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

// kindOf is the type of a valid JSON value, by its first byte.
func kindOf(v json.RawMessage) jsonKind {
	v = trimJSONSpace(v)
	if len(v) == 0 {
		return jsonInvalid
	}
	switch b := v[0]; {
	case b == 'n':
		return jsonNull
	case b == 't' || b == 'f':
		return jsonBool
	case b == '"':
		return jsonString
	case b == '[':
		return jsonArray
	case b == '{':
		return jsonObject
	case b == '-' || (b >= '0' && b <= '9'):
		return jsonNumber
	}
	return jsonInvalid
}

// rpcAuthenticate is user.Authenticate: the client JWT comes in
// "Authorization: Bearer <client_id> <client JWT>"; params are ignored.
func (s *Server) rpcAuthenticate(c *gin.Context) (any, *rpcError) {
	f := strings.Fields(c.GetHeader("Authorization"))
	if len(f) != 3 || !strings.EqualFold(f[0], "Bearer") {
		return nil, newRPCError(rpcMalformedAssertion, "send Authorization: Bearer <client_id> <client JWT>")
	}
	g, err := s.accounts.AuthenticateClient(c.Request.Context(), f[1], f[2], s.tokens.Issuer())
	if err != nil {
		var ae *accounts.AssertionError
		if !errors.As(err, &ae) {
			return nil, s.rpcFailure(c, methodAuthenticate, err)
		}
		code, known := assertionCodes[ae.Reason]
		if !known {
			code = rpcMalformedAssertion
		}
		e := newRPCError(code, ae.Detail)
		switch code {
		case rpcClaimMissing:
			e.Data = &rpcErrorData{Claim: ae.Claim, Detail: "the client JWT has no " + ae.Claim + " claim"}
		case rpcUnknownClient:
			// Whether the client never existed, was revoked or has a
			// disabled owner is not the caller's business.
			e.Data = nil
		}
		return nil, e
	}
	return rpcTokens{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken}, nil
}

// rpcRefresh is user.Refresh: params is the refresh token, as a string (the
// seed's form) or an array holding only it.
func (s *Server) rpcRefresh(c *gin.Context, params json.RawMessage) (any, *rpcError) {
	rt, ok := refreshParam(params)
	if !ok {
		return nil, newRPCError(rpcInvalidArguments, `params must be the refresh token: "token" or ["token"]`)
	}
	g, err := s.accounts.Refresh(c.Request.Context(), rt, accounts.RotateRefreshToken)
	switch {
	case err == nil:
		return rpcTokens{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken}, nil
	case errors.Is(err, accounts.ErrRefreshExpired):
		return nil, newRPCError(rpcRefreshExpired, "log in again")
	case errors.Is(err, accounts.ErrRefreshInvalid):
		return nil, newRPCError(rpcInvalidRefresh, "the refresh token is unknown, revoked or already used; log in again")
	}
	return nil, s.rpcFailure(c, methodRefresh, err)
}

func refreshParam(params json.RawMessage) (string, bool) {
	var rt string
	switch kindOf(params) {
	case jsonString:
		if json.Unmarshal(params, &rt) != nil {
			return "", false
		}
	case jsonArray:
		var list []json.RawMessage
		if json.Unmarshal(params, &list) != nil || len(list) != 1 || kindOf(list[0]) != jsonString ||
			json.Unmarshal(list[0], &rt) != nil {
			return "", false
		}
	default:
		return "", false
	}
	return rt, rt != ""
}

// rpcFailure is -32603 for anything the caller cannot fix: our bugs and a
// database outage alike, logged; data.detail tells an outage apart.
func (s *Server) rpcFailure(c *gin.Context, method string, err error) *rpcError {
	e := classify(err)
	s.log.ErrorContext(c.Request.Context(), "json-rpc call failed", "request_id", requestID(c),
		"rpc_method", method, "code", string(e.Code), "error", err)
	detail := "quote the X-Request-Id response header when reporting it"
	if e.Code == apperr.Unavailable {
		detail = "temporarily unavailable; retry shortly"
	}
	return newRPCError(rpcInternalError, detail)
}

func (s *Server) rpcTooLarge(c *gin.Context) {
	s.rpcWrite(c, http.StatusRequestEntityTooLarge,
		rpcResponse{JSONRPC: "2.0", Error: newRPCError(rpcInvalidRequest, "the request body is larger than 1 MiB")})
}

func (s *Server) rpcWrite(c *gin.Context, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.logFailure(c, err)
		status = http.StatusOK
		b = []byte(`{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal Server Error"},"id":null}`)
	}
	c.Data(status, "application/json", b)
}
