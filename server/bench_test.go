package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/ideapool/ideapool/internal/ideas"
)

// BenchmarkIdeaPageJSON encodes one page of ideas (GET /ideas?page=1), the
// body of the hottest authenticated read: "by hand" as the handler writes it
// (ideas.AppendPageJSON), "gin" as c.JSON would (reflection through the
// Idea's MarshalJSON), "encoding/json" as plain json.Marshal.
func BenchmarkIdeaPageJSON(b *testing.B) {
	page := make([]ideas.Idea, ideas.PageSize)
	for i := range page {
		page[i] = ideas.Idea{ID: "tg2b9tv6" + strconv.Itoa(i), Content: "an idea of a reasonable length, " + strconv.Itoa(i),
			Impact: 8, Ease: 7, Confidence: 1 + i%10, AverageScore: ideas.Score(float64(15+1+i%10) / 3), CreatedAt: 1780315200 + int64(i)}
	}
	b.Run("gin", func(b *testing.B) {
		gin.SetMode(gin.ReleaseMode)
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		for b.Loop() {
			w.Body.Reset()
			c.JSON(http.StatusOK, page)
		}
		b.SetBytes(int64(w.Body.Len()))
	})
	b.Run("by hand", func(b *testing.B) {
		// What the handler does now: ideas.AppendPageJSON into one buffer.
		var n int
		for b.Loop() {
			body, err := ideas.AppendPageJSON(make([]byte, 0, 2048), page)
			if err != nil {
				b.Fatal(err)
			}
			n = len(body)
		}
		b.SetBytes(int64(n))
	})
	b.Run("encoding/json", func(b *testing.B) {
		var n int
		for b.Loop() {
			body, err := json.Marshal(page)
			if err != nil {
				b.Fatal(err)
			}
			n = len(body)
		}
		b.SetBytes(int64(n))
	})
}
