package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const ideaColumns = "id, user_id, content, impact, ease, confidence, created_at"

func scanIdea(sc scanner) (Idea, error) {
	var (
		i         Idea
		createdAt int64
	)
	err := sc.Scan(&i.ID, &i.UserID, &i.Content, &i.Impact, &i.Ease, &i.Confidence, &createdAt)
	i.CreatedAt = goTime(createdAt)
	return i, err
}

// CreateIdea inserts i; an unknown i.UserID is ErrNotFound.
func (s *sqlStore) CreateIdea(ctx context.Context, i Idea) error {
	_, err := s.exec(ctx, "INSERT INTO ideas ("+ideaColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		i.ID, i.UserID, i.Content, i.Impact, i.Ease, i.Confidence, dbTime(i.CreatedAt))
	if err != nil {
		return fmt.Errorf("create idea: %w", err)
	}
	return nil
}

// UpdateIdea replaces content and scores of i.ID if i.UserID owns it.
func (s *sqlStore) UpdateIdea(ctx context.Context, i Idea) (Idea, error) {
	got, err := scanIdea(s.w.QueryRowContext(ctx, s.d.bind(`UPDATE ideas
		SET content = ?, impact = ?, ease = ?, confidence = ?
		WHERE id = ? AND user_id = ?
		RETURNING `+ideaColumns), i.Content, i.Impact, i.Ease, i.Confidence, i.ID, i.UserID))
	if err != nil {
		return Idea{}, fmt.Errorf("update idea: %w", s.d.mapErr(err))
	}
	return got, nil
}

// DeleteIdea deletes idea id if userID owns it.
func (s *sqlStore) DeleteIdea(ctx context.Context, userID, id string) error {
	n, err := s.exec(ctx, "DELETE FROM ideas WHERE id = ? AND user_id = ?", id, userID)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete idea: %w", err)
	}
	return nil
}

// ListIdeas returns one page of userID's ideas. The order is total (id
// breaks the last ties), so pages neither overlap nor skip while the ideas
// do not change; ideas_listing_idx serves it without sorting. Pages past
// the first listingMarkEvery ideas start from a remembered position instead
// of counting every idea before them (see listing.go).
func (s *sqlStore) ListIdeas(ctx context.Context, userID string, limit, offset int) ([]Idea, error) {
	if limit < 0 || offset < 0 {
		return nil, errors.New("list ideas: negative limit or offset")
	}
	if limit == 0 {
		return []Idea{}, nil
	}
	if offset >= listingMarkEvery {
		ideas, err := s.listDeep(ctx, userID, limit, offset)
		if err != nil {
			return nil, fmt.Errorf("list ideas: %w", s.d.mapErr(err))
		}
		return ideas, nil
	}
	rows, err := s.query(ctx, "SELECT "+listingColumns+" FROM ideas WHERE user_id = ? "+listingOrder+" LIMIT ? OFFSET ?", userID, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list ideas: %w", s.d.mapErr(err))
	}
	ideas, err := scanListing(rows, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("list ideas: %w", s.d.mapErr(err))
	}
	return ideas, nil
}

// listingOrder is the README's order: highest average score first, ties
// newest first (to the microsecond), then by id.
const listingOrder = "ORDER BY score_sum DESC, created_at DESC, id DESC"

// listingColumns are the columns of a listing: the user is known.
const listingColumns = "id, content, impact, ease, confidence, created_at"

// scanListing reads at most limit ideas of userID, into one allocation.
func scanListing(rows *sql.Rows, userID string, limit int) ([]Idea, error) {
	defer rows.Close()
	ideas := make([]Idea, 0, min(limit, 100))
	for rows.Next() {
		i := Idea{UserID: userID}
		var createdAt int64
		if err := rows.Scan(&i.ID, &i.Content, &i.Impact, &i.Ease, &i.Confidence, &createdAt); err != nil {
			return nil, err
		}
		i.CreatedAt = goTime(createdAt)
		ideas = append(ideas, i)
	}
	return ideas, rows.Err()
}
