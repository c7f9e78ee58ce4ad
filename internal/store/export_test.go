package store

import (
	"context"
	"errors"
	"fmt"
)

// LegacyDB is a database as an older release left it: migrated only up to
// some version. Upgrade tests fill it with raw SQL, then Open it.
type LegacyDB struct{ s *sqlStore }

// OpenLegacy migrates the database named by url to version and no further.
func OpenLegacy(ctx context.Context, url string, version int) (*LegacyDB, error) {
	s, err := openSQL(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	ms, err := loadMigrations(s.d.name)
	if err == nil && (version < 1 || version > len(ms)) {
		err = fmt.Errorf("no migration %d", version)
	}
	if err == nil {
		err = s.applyMigrations(ctx, ms[:version])
	}
	if err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return &LegacyDB{s: s}, nil
}

// Exec runs query, written with '?' placeholders.
func (db *LegacyDB) Exec(ctx context.Context, query string, args ...any) error {
	_, err := db.s.exec(ctx, query, args...)
	return err
}

// Close disconnects.
func (db *LegacyDB) Close() error { return db.s.Close() }

// The store's tests page deep with a few dozen ideas: a mark every 7 makes
// every listing past the first page start from a mark.
func init() { listingMarkEvery = 7 }

// ReaderPragma is the value of PRAGMA name on a reading connection of s.
func ReaderPragma(ctx context.Context, s Store, name string) (string, error) {
	ss, ok := s.(*sqlStore)
	if !ok {
		return "", fmt.Errorf("%T is no SQL store", s)
	}
	var v string
	err := ss.r.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

const SQLiteReaderMmap = sqliteReaderMmap
