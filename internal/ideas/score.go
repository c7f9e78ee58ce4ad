package ideas

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// Score is an average score. In JSON it always has a fractional part (8.0,
// not 8), as the Idea Pool document shows it, so that a client comparing
// bodies as text sees the documented form; the digits are those of
// encoding/json (the shortest that round-trip).
type Score float64

// MarshalJSON writes s as a JSON number with at least one decimal.
func (s Score) MarshalJSON() ([]byte, error) {
	return s.AppendJSON(nil)
}

// AppendJSON appends s as MarshalJSON writes it.
func (s Score) AppendJSON(b []byte) ([]byte, error) {
	f := float64(s)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("score %v is not a JSON number", f)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	if !bytes.ContainsRune(b[start:], '.') {
		b = append(b, '.', '0')
	}
	return b, nil
}
