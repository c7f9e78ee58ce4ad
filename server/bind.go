package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ideapool/ideapool/internal/apperr"
)

// maxBody bounds every request body.
const maxBody = 1 << 20

// body is a decoded request body, JSON object or form, read field by field
// so that every wrong type is reported by name.
type body struct {
	json map[string]json.RawMessage
	form url.Values
}

// readBody reads a JSON or form-encoded body of at most maxBody bytes. An
// empty body is an empty object. JSON is recognised by its first byte as
// well as by Content-Type, since many clients send JSON without saying so.
func readBody(r *http.Request) (body, error) {
	if r.ContentLength > maxBody {
		return body{}, tooLarge()
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return body{}, tooLarge()
		}
		return body{}, apperr.New(apperr.BadRequest, "could not read the request body")
	}
	trimmed := bytes.TrimSpace(raw)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case len(trimmed) == 0:
		return body{json: map[string]json.RawMessage{}}, nil
	case trimmed[0] == '{' || trimmed[0] == '[' || mediaType == "application/json":
		// JSON text is UTF-8 (RFC 8259); encoding/json would quietly
		// store U+FFFD for every bad byte.
		if !utf8.Valid(trimmed) {
			return body{}, apperr.New(apperr.BadRequest, "the body is not valid UTF-8")
		}
		if tooDeep(trimmed) {
			return body{}, apperr.Newf(apperr.BadRequest, "the body is nested more than %d deep", maxJSONDepth)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &m); err != nil || m == nil {
			return body{}, apperr.New(apperr.BadRequest, "the body is not a JSON object: send {\"field\": value, ...}")
		}
		return body{json: m}, nil
	case mediaType == "application/x-www-form-urlencoded" || mediaType == "":
		v, err := url.ParseQuery(string(trimmed))
		if err != nil {
			return body{}, apperr.New(apperr.BadRequest, "the body is not valid form encoding")
		}
		return body{form: v}, nil
	default:
		return body{}, apperr.Newf(apperr.BadRequest, "unsupported Content-Type %q: send application/json or application/x-www-form-urlencoded", mediaType)
	}
}

// maxJSONDepth bounds the nesting of request JSON: no body of ours needs
// more than a few levels, and encoding/json's own bound is 10,000.
const maxJSONDepth = 32

// tooDeep reports whether the JSON text b nests objects and arrays more
// than maxJSONDepth deep (brackets inside strings do not count).
func tooDeep(b []byte) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxJSONDepth {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

func tooLarge() error {
	return apperr.New(apperr.TooLarge, "the request body is larger than 1 MiB")
}

// problems collects field errors while reading a body.
type problems map[string]string

// merge adds more problems; a field's first problem (a wrong type, say) wins.
func (p problems) merge(more map[string]string) {
	for k, v := range more {
		if _, seen := p[k]; !seen {
			p[k] = v
		}
	}
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return apperr.InvalidFields(p)
}

// str returns a string field; nil when absent. A present non-string, and
// a string that is not UTF-8 or holds a NUL character (no field may: a
// form's %FF would otherwise be stored as U+FFFD, and PostgreSQL refuses
// both), is recorded as a problem.
func (b body) str(name string, p problems) *string {
	var s string
	if b.form != nil {
		vs, ok := b.form[name]
		if !ok {
			return nil
		}
		s = vs[0]
	} else {
		raw, ok := b.json[name]
		if !ok {
			return nil
		}
		if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			p[name] = "must be a string"
			return nil
		}
	}
	if m := textProblem(s); m != "" {
		p[name] = m
		return nil
	}
	return &s
}

// textProblem says what is wrong with s as text, "" if nothing.
func textProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.ContainsRune(s, 0):
		return "must not contain NUL characters"
	}
	return ""
}

// requiredStr is str that records a missing field too.
func (b body) requiredStr(name string, p problems) string {
	s := b.str(name, p)
	if s == nil {
		if _, bad := p[name]; !bad {
			p[name] = "is required"
		}
		return ""
	}
	if *s == "" {
		p[name] = "is required"
	}
	return *s
}

var integerRE = regexp.MustCompile(`^-?[0-9]{1,9}$`)

// integer returns an integer field; nil when absent or wrong. Strings,
// fractions, exponents and null are refused.
func (b body) integer(name string, p problems) *int {
	var text string
	if b.form != nil {
		vs, ok := b.form[name]
		if !ok {
			return nil
		}
		text = vs[0]
	} else {
		raw, ok := b.json[name]
		if !ok {
			return nil
		}
		text = string(raw)
	}
	if !integerRE.MatchString(text) {
		p[name] = "must be an integer from 1 to 10"
		return nil
	}
	n, err := strconv.Atoi(text)
	if err != nil {
		p[name] = fmt.Sprintf("must be an integer: %v", err)
		return nil
	}
	return &n
}

// rawObject returns a JSON object field as raw JSON (in a form body, a
// string holding the object); nil when absent.
func (b body) rawObject(name string, p problems) json.RawMessage {
	var raw json.RawMessage
	if b.form != nil {
		vs, ok := b.form[name]
		if !ok {
			return nil
		}
		raw = json.RawMessage(vs[0])
	} else {
		v, ok := b.json[name]
		if !ok || string(v) == "null" {
			return nil
		}
		raw = v
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		p[name] = "must be a JSON object (a public JWK)"
		return nil
	}
	return raw
}
