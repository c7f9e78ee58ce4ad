// Package ideas is the idea pool: each user's ideas, scored on impact, ease
// and confidence, listed best first.
package ideas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/randid"
	"github.com/ideapool/ideapool/internal/store"
)

// PageSize is the number of ideas in one page.
const PageSize = 10

// MaxContent is the longest content, in Unicode code points.
const MaxContent = 255

// Store is what the pool needs from storage.
type Store interface {
	CreateIdea(ctx context.Context, i store.Idea) error
	UpdateIdea(ctx context.Context, i store.Idea) (store.Idea, error)
	DeleteIdea(ctx context.Context, userID, id string) error
	ListIdeas(ctx context.Context, userID string, limit, offset int) ([]store.Idea, error)
}

// Idea is the client's view of an idea.
type Idea struct {
	ID           string `json:"id"`
	Content      string `json:"content"`
	Impact       int    `json:"impact"`
	Ease         int    `json:"ease"`
	Confidence   int    `json:"confidence"`
	AverageScore Score  `json:"average_score"`
	CreatedAt    int64  `json:"created_at"`
}

// Input is the body of a create or update. Scores are pointers so that a
// missing score can be told from an invalid one.
type Input struct {
	Content    *string
	Impact     *int
	Ease       *int
	Confidence *int
}

// Service runs the idea pool.
type Service struct {
	store Store
	now   func() time.Time
	rand  io.Reader
}

// New returns a Service.
func New(s Store, now func() time.Time, rand io.Reader) *Service {
	return &Service{store: s, now: now, rand: rand}
}

// Validate returns what is wrong with in, by field.
func (in Input) Validate() error {
	bad := map[string]string{}
	switch {
	case in.Content == nil:
		bad["content"] = "is required"
	case !utf8.ValidString(*in.Content):
		bad["content"] = "must be valid UTF-8"
	case strings.TrimSpace(*in.Content) == "":
		bad["content"] = "must not be empty or only white space"
	case utf8.RuneCountInString(*in.Content) > MaxContent:
		bad["content"] = "must be at most 255 characters"
	}
	for name, v := range map[string]*int{"impact": in.Impact, "ease": in.Ease, "confidence": in.Confidence} {
		switch {
		case v == nil:
			bad[name] = "is required (an integer from 1 to 10)"
		case *v < 1 || *v > 10:
			bad[name] = "must be an integer from 1 to 10"
		}
	}
	if len(bad) > 0 {
		return apperr.InvalidFields(bad)
	}
	return nil
}

// Create adds an idea for userID.
func (s *Service) Create(ctx context.Context, userID string, in Input) (Idea, error) {
	if err := in.Validate(); err != nil {
		return Idea{}, err
	}
	i := store.Idea{UserID: userID, Content: *in.Content, Impact: *in.Impact, Ease: *in.Ease,
		Confidence: *in.Confidence, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	// Nine base32 characters are 45 bits: collisions are rare but possible,
	// so a taken id is retried.
	for attempt := 0; ; attempt++ {
		id, err := randid.New(s.rand, 9)
		if err != nil {
			return Idea{}, err
		}
		i.ID = id
		err = s.store.CreateIdea(ctx, i)
		if err == nil {
			return view(i), nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt == 3 {
			return Idea{}, fmt.Errorf("create idea: %w", err)
		}
	}
}

// Update replaces an idea's content and scores.
func (s *Service) Update(ctx context.Context, userID, id string, in Input) (Idea, error) {
	if err := in.Validate(); err != nil {
		return Idea{}, err
	}
	if !randid.Plausible(id) {
		return Idea{}, notFound()
	}
	i, err := s.store.UpdateIdea(ctx, store.Idea{ID: id, UserID: userID, Content: *in.Content,
		Impact: *in.Impact, Ease: *in.Ease, Confidence: *in.Confidence})
	if errors.Is(err, store.ErrNotFound) {
		return Idea{}, notFound()
	}
	if err != nil {
		return Idea{}, fmt.Errorf("update idea: %w", err)
	}
	return view(i), nil
}

// Delete removes an idea.
func (s *Service) Delete(ctx context.Context, userID, id string) error {
	if !randid.Plausible(id) {
		return notFound()
	}
	err := s.store.DeleteIdea(ctx, userID, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound()
	}
	if err != nil {
		return fmt.Errorf("delete idea: %w", err)
	}
	return nil
}

// Page returns page (1-based) of a user's ideas; past the end it is empty.
func (s *Service) Page(ctx context.Context, userID string, page int) ([]Idea, error) {
	if page < 1 {
		return nil, apperr.InvalidFields(map[string]string{"page": "must be an integer greater than 0"})
	}
	const maxPage = 1 << 20 // keeps the offset far from overflow
	if page > maxPage {
		return []Idea{}, nil
	}
	rows, err := s.store.ListIdeas(ctx, userID, PageSize, (page-1)*PageSize)
	if err != nil {
		return nil, fmt.Errorf("list ideas: %w", err)
	}
	out := make([]Idea, len(rows))
	for n, i := range rows {
		out[n] = view(i)
	}
	return out, nil
}

func notFound() error { return apperr.New(apperr.NotFound, "idea not found") }

func view(i store.Idea) Idea {
	return Idea{ID: i.ID, Content: i.Content, Impact: i.Impact, Ease: i.Ease, Confidence: i.Confidence,
		AverageScore: Score(float64(i.Impact+i.Ease+i.Confidence) / 3), CreatedAt: i.CreatedAt.Unix()}
}
