package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Open connects to the database named by url, applies any pending schema
// migrations and returns the Store. Accepted forms:
//
//	sqlite:PATH                  a SQLite file; its directory is created (0700)
//	postgres://user@host/db?...  PostgreSQL (postgresql:// also accepted)
//
// A nil log discards log output. Errors never contain the URL, which may
// hold a password.
func Open(ctx context.Context, url string, log *slog.Logger) (Store, error) {
	s, err := openSQL(ctx, url, log)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Migrate applies pending schema migrations to the database named by url
// (same forms as Open) and disconnects. It is safe to run while servers or
// other migrations use the same database.
func Migrate(ctx context.Context, url string, log *slog.Logger) error {
	s, err := openSQL(ctx, url, log)
	if err != nil {
		return err
	}
	err = s.migrate(ctx)
	if cerr := s.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close database: %w", cerr)
	}
	return err
}

// acceptedURLs ends every error about a URL's form.
const acceptedURLs = "want sqlite:PATH, postgres://USER@HOST/DB or postgresql://USER@HOST/DB"

// openSQL picks the backend from url's scheme and connects, without
// migrating.
func openSQL(ctx context.Context, url string, log *slog.Logger) (*sqlStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(url, "sqlite:"), log)
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return openPostgres(ctx, url, log)
	}
	scheme, _, found := strings.Cut(url, ":")
	if !found || strings.ContainsAny(scheme, "/@ ") {
		return nil, errors.New("database URL has no scheme: " + acceptedURLs)
	}
	return nil, fmt.Errorf("unsupported database URL scheme %q: %s", scheme, acceptedURLs)
}
