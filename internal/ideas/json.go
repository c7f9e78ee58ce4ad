package ideas

import (
	"strconv"
	"unicode/utf8"
)

// The idea bodies are the hottest responses of the API (every authenticated
// read is a page of them), so they are written by hand instead of by
// reflection: the same bytes encoding/json writes for these fields, with the
// average score as Score writes it. TestIdeaJSONMatchesEncodingJSON holds the
// two to each other.

// MarshalJSON writes i as AppendJSON does.
func (i Idea) MarshalJSON() ([]byte, error) {
	return i.AppendJSON(make([]byte, 0, 160))
}

// AppendJSON appends i as a JSON object.
func (i Idea) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, i.ID)
	b = append(b, `,"content":`...)
	b = appendString(b, i.Content)
	b = append(b, `,"impact":`...)
	b = strconv.AppendInt(b, int64(i.Impact), 10)
	b = append(b, `,"ease":`...)
	b = strconv.AppendInt(b, int64(i.Ease), 10)
	b = append(b, `,"confidence":`...)
	b = strconv.AppendInt(b, int64(i.Confidence), 10)
	b = append(b, `,"average_score":`...)
	b, err := i.AverageScore.AppendJSON(b)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"created_at":`...)
	b = strconv.AppendInt(b, i.CreatedAt, 10)
	return append(b, '}'), nil
}

// AppendPageJSON appends ideas as a JSON array ([] when empty).
func AppendPageJSON(b []byte, ideas []Idea) ([]byte, error) {
	b = append(b, '[')
	for n, i := range ideas {
		if n > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = i.AppendJSON(b); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string escaped as encoding/json escapes
// it: HTML-safe (<, >, & as \u003c...), U+2028 and U+2029 escaped, invalid
// UTF-8 as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
