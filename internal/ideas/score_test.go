package ideas

import (
	"encoding/json"
	"testing"
)

func TestScoreJSON(t *testing.T) {
	tests := map[string]struct {
		score Score
		want  string
	}{
		"whole":     {score: 8, want: "8.0"},
		"ten":       {score: 10, want: "10.0"},
		"one":       {score: 1, want: "1.0"},
		"a third":   {score: 19.0 / 3, want: "6.333333333333333"},
		"two third": {score: 17.0 / 3, want: "5.666666666666667"},
		"a half":    {score: 5.5, want: "5.5"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := json.Marshal(Idea{AverageScore: tc.score})
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				AverageScore json.RawMessage `json:"average_score"`
			}
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if string(back.AverageScore) != tc.want {
				t.Errorf("average_score %s, want %s", back.AverageScore, tc.want)
			}
			// The digits round-trip to the same number.
			var f float64
			if err := json.Unmarshal(back.AverageScore, &f); err != nil || f != float64(tc.score) {
				t.Errorf("%s reads back as %v (%v), want %v", back.AverageScore, f, err, float64(tc.score))
			}
		})
	}
	if _, err := Score(0).AppendJSON(nil); err != nil {
		t.Errorf("0: %v", err)
	}
}
