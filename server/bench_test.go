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
// body of the hottest authenticated read: "gin" as the handler writes it
// (c.JSON into a response), "encoding/json" as the floor of reflection-based
// encoding without the framework.
func BenchmarkIdeaPageJSON(b *testing.B) {
	page := make([]ideas.Idea, ideas.PageSize)
	for i := range page {
		page[i] = ideas.Idea{ID: "tg2b9tv6" + strconv.Itoa(i), Content: "an idea of a reasonable length, " + strconv.Itoa(i),
			Impact: 8, Ease: 7, Confidence: 1 + i%10, AverageScore: float64(15+1+i%10) / 3, CreatedAt: 1780315200 + int64(i)}
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
