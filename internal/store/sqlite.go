package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite pragmas, set through the DSN so every pooled connection gets them.
//
// WAL lets readers run beside the writer. synchronous=NORMAL in WAL mode
// syncs the WAL at checkpoints rather than on every commit: a committed write
// survives the process crashing, but the last commits may be lost if the
// machine loses power. busy_timeout covers other processes holding the lock
// (a second server, `ideapool migrate`); within one process the single
// writer connection already serializes writes.
const (
	sqliteCommonPragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"
	// _txlock=immediate makes BeginTx take the write lock up front
	// (BEGIN IMMEDIATE), so a transaction never fails half-way on upgrade.
	sqliteWriterParams = "?_txlock=immediate&" + sqliteCommonPragmas +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	// Readers map up to 256 MiB of the database (mmap_size) instead of
	// copying every page they miss in their 2 MB cache out of the kernel's
	// page cache: GET /ideas?page=1 on a database of 100,000 ideas went
	// from 76% to 83% of its rate on an empty one (make bench-scale). The
	// mapped pages are page cache: the kernel reclaims them under memory
	// pressure, and they are not Go's or SQLite's heap.
	sqliteReaderParams = "?" + sqliteCommonPragmas + "&_pragma=query_only(1)&_pragma=mmap_size(" + sqliteReaderMmap + ")"
	sqliteReaderMmap   = "268435456"
)

var sqliteDialect = &dialect{
	name: "sqlite",
	createMigrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
	)`,
	rowAddress: "rowid",
	rowIn:      func(sub string) string { return "rowid IN (" + sub + ")" },
	classify:   classifySQLite,
}

// openSQLite opens the file at path with one writer connection and a pool of
// read-only connections. One writer avoids SQLITE_BUSY between our own
// connections: concurrent writes queue in database/sql, where the caller's
// context bounds the wait.
func openSQLite(ctx context.Context, path string, log *slog.Logger) (*sqlStore, error) {
	// sqlite:///abs/path is the URL spelling of sqlite:/abs/path.
	if strings.HasPrefix(path, "///") {
		path = path[2:]
	}
	switch {
	case path == "":
		return nil, errors.New("open sqlite: empty path: want sqlite:PATH")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, errors.New("open sqlite: want sqlite:PATH with a file path")
	case strings.ContainsRune(path, '?'):
		return nil, errors.New("open sqlite: path must not contain '?'")
	}
	path = filepath.Clean(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite: create directory: %w", err)
	}
	// Created here so the file holding password hashes is private; SQLite
	// gives its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}

	w, err := sql.Open("sqlite", path+sqliteWriterParams)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// The writer connects first so the file is in WAL mode before any
	// reader opens it.
	if err := pingSQLite(ctx, w); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite: %w", sqliteDialect.mapErr(err))
	}

	r, err := sql.Open("sqlite", path+sqliteReaderParams)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	if err := pingSQLite(ctx, r); err != nil {
		_ = w.Close()
		_ = r.Close()
		return nil, fmt.Errorf("open sqlite: %w", sqliteDialect.mapErr(err))
	}
	log.Debug("opened database", "backend", "sqlite", "path", path)
	return &sqlStore{w: w, r: r, d: sqliteDialect, log: log}, nil
}

// pingSQLite connects, retrying while the file is locked for at most the
// busy timeout. The busy handler does not cover every lock a new connection
// takes: switching a new file to WAL while another process or pool does the
// same fails at once with SQLITE_BUSY.
func pingSQLite(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := db.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// classifySQLite maps SQLite result codes. Constraint errors name the column
// only in their message: "UNIQUE constraint failed: users.email".
func classifySQLite(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch code := se.Code(); code {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return &ConflictError{Field: sqliteConstraintColumn(se.Error())}
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return errForeignKey
	default:
		switch code & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_PROTOCOL,
			sqlite3.SQLITE_INTERRUPT:
			return unavailable(err)
		}
	}
	return nil
}

// sqliteConstraintColumn returns "email" from a message containing
// "constraint failed: users.email" (the first column if several).
func sqliteConstraintColumn(msg string) string {
	const marker = "constraint failed: "
	i := strings.LastIndex(msg, marker)
	if i < 0 {
		return ""
	}
	rest := msg[i+len(marker):]
	rest, _, _ = strings.Cut(rest, ",")
	rest, _, _ = strings.Cut(rest, " ")
	if _, col, ok := strings.Cut(rest, "."); ok {
		return col
	}
	return rest
}
