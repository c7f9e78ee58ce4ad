package ideas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// reflected is Idea as encoding/json writes it by reflection.
type reflected struct {
	ID           string  `json:"id"`
	Content      string  `json:"content"`
	Impact       int     `json:"impact"`
	Ease         int     `json:"ease"`
	Confidence   int     `json:"confidence"`
	AverageScore float64 `json:"average_score"`
	CreatedAt    int64   `json:"created_at"`
}

func TestIdeaJSONMatchesEncodingJSON(t *testing.T) {
	contents := map[string]string{
		"plain":         "the-content",
		"quotes":        `say "hi" \ back`,
		"html":          "<script>alert('x') & more</script>",
		"controls":      "a\x00b\x01c\x1f\b\f\n\r\td\x7f",
		"unicode":       "idée 💡 über 日本語",
		"separators":    "line\u2028para\u2029end",
		"bad UTF-8":     "a\xffb\xc3",
		"empty":         "",
		"255 emoji":     strings.Repeat("💡", 255),
		"combining":     "e\u0301",
		"json inside":   `{"content":"x"}`,
		"only escapes":  `"\"`,
		"long ascii":    strings.Repeat("abc ", 60),
		"noncharacters": "\uFFFE\uFFFF\U0010FFFF",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 200 { // random bytes, valid or not
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		contents[fmt.Sprintf("random %d", n)] = string(b)
	}
	for name, content := range contents {
		i := Idea{ID: "tg2b9rh1i", Content: content, Impact: 3, Ease: 8, Confidence: 10,
			AverageScore: Score(21.0 / 3), CreatedAt: 1553657927}
		got, err := i.AppendJSON(nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := json.Marshal(reflected{i.ID, i.Content, i.Impact, i.Ease, i.Confidence, float64(i.AverageScore), i.CreatedAt})
		if err != nil {
			t.Fatal(err)
		}
		// encoding/json writes 7 for the score; ours writes 7.0.
		want = bytes.Replace(want, []byte(`"average_score":7,`), []byte(`"average_score":7.0,`), 1)
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

func TestPageJSON(t *testing.T) {
	tests := map[string]struct {
		page []Idea
		want string
	}{
		"empty": {page: nil, want: `[]`},
		"two": {page: []Idea{{ID: "a", Content: "x", Impact: 1, Ease: 1, Confidence: 1, AverageScore: 1, CreatedAt: 1},
			{ID: "b", Content: "y", Impact: 1, Ease: 2, Confidence: 2, AverageScore: 5.0 / 3, CreatedAt: 2}},
			want: `[{"id":"a","content":"x","impact":1,"ease":1,"confidence":1,"average_score":1.0,"created_at":1},` +
				`{"id":"b","content":"y","impact":1,"ease":2,"confidence":2,"average_score":1.6666666666666667,"created_at":2}]`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := AppendPageJSON(nil, tc.page)
			if err != nil || string(got) != tc.want {
				t.Errorf("got %s (%v), want %s", got, err, tc.want)
			}
			// And encoding/json, through MarshalJSON, agrees.
			viaJSON, err := json.Marshal(tc.page)
			if tc.page == nil {
				viaJSON, err = json.Marshal([]Idea{})
			}
			if err != nil || string(viaJSON) != tc.want {
				t.Errorf("json.Marshal: %s (%v), want %s", viaJSON, err, tc.want)
			}
		})
	}
}
