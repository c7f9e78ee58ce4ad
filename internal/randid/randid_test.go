package randid

import (
	"crypto/rand"
	"strings"
	"testing"
)

func TestPlausible(t *testing.T) {
	for _, n := range []int{1, 9, 16, 24, MaxLen} {
		id, err := New(rand.Reader, n)
		if err != nil {
			t.Fatal(err)
		}
		if !Plausible(id) {
			t.Errorf("New(%d) = %q is not Plausible", n, id)
		}
	}
	for name, id := range map[string]string{
		"empty":          "",
		"too long":       strings.Repeat("a", MaxLen+1),
		"NUL":            "a\x00b",
		"not UTF-8":      "a\xffb",
		"outside base32": "tg2b9rh1w",
		"upper-case":     "TG2B9RH1I",
		"path":           "../etc",
	} {
		if Plausible(id) {
			t.Errorf("%s: Plausible(%q) = true", name, id)
		}
	}
}
