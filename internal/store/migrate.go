package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// migrationsFS holds migrations/DIALECT/NNNN_name.sql, numbered from 1
// without gaps. A migration, once released, is never edited.
//
//go:embed migrations
var migrationsFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(dialect string) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries { // sorted by name, so by version
		name, ok := strings.CutSuffix(e.Name(), ".sql")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s/%s: want version %04d", dir, e.Name(), len(ms)+1)
		}
		b, err := fs.ReadFile(migrationsFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration: %w", err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	return ms, nil
}

// migrate applies the pending migrations, each in its own transaction.
// Concurrent migrators serialize on the write lock (SQLite) or an advisory
// lock (PostgreSQL) and re-read the applied version under it, so none is
// applied twice.
func (s *sqlStore) migrate(ctx context.Context) error {
	ms, err := loadMigrations(s.d.name)
	if err != nil {
		return err
	}
	return s.applyMigrations(ctx, ms)
}

// applyMigrations applies those of ms, the first len(ms) migrations, that
// the database lacks.
func (s *sqlStore) applyMigrations(ctx context.Context, ms []migration) error {
	for _, m := range ms {
		applied, err := s.applyMigration(ctx, m, len(ms))
		if err != nil {
			return fmt.Errorf("migrate to version %d: %w", m.version, err)
		}
		if applied {
			s.log.Info("applied schema migration", "version", m.version, "name", m.name)
		}
	}
	return nil
}

func (s *sqlStore) applyMigration(ctx context.Context, m migration, latest int) (applied bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if s.d.lockMigrations != nil {
			if err := s.d.lockMigrations(ctx, tx); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, s.d.createMigrationsTable); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return err
		}
		if current > latest {
			return fmt.Errorf("database schema version %d is newer than this binary knows (%d)", current, latest)
		}
		if current >= m.version {
			return nil
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.d.bind("INSERT INTO schema_migrations (version, name) VALUES (?, ?)"), m.version, m.name); err != nil {
			return err
		}
		applied = true
		return nil
	})
	return applied, err
}
