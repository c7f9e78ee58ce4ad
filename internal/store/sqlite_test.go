package store_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/store/storetest"
)

// sqliteURL names a new SQLite file in a directory Open must create.
func sqliteURL(t *testing.T) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "data", "ideapool.db")
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, sqliteURL(t)) })
}

func TestSQLiteReplicas(t *testing.T) {
	storetest.RunReplicas(t, func(t *testing.T) (store.Store, store.Store) {
		url := sqliteURL(t)
		return mustOpen(t, url), mustOpen(t, url)
	})
}

func TestSQLiteOpen(t *testing.T) {
	testOpen(t, sqliteURL)
}

func TestSQLiteFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	path := filepath.Join(dir, "ideapool.db")
	s := mustOpen(t, "sqlite:"+path)
	if err := s.RecordLoginAttempt(t.Context(), "k", "", time.Unix(0, 0)); err != nil {
		t.Fatalf("RecordLoginAttempt: %v", err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600, path + "-wal": 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

// Readers map the database (mmap_size) and cannot write (query_only).
func TestSQLiteReaderPragmas(t *testing.T) {
	s := mustOpen(t, "sqlite:"+filepath.Join(t.TempDir(), "ideapool.db"))
	for name, want := range map[string]string{"mmap_size": store.SQLiteReaderMmap, "query_only": "1"} {
		got, err := store.ReaderPragma(t.Context(), s, name)
		if err != nil || got != want {
			t.Errorf("PRAGMA %s on a reader = %q, %v; want %q", name, got, err, want)
		}
	}
}

// SQLite serializes writers: the cleanup lock is granted to every caller.
func TestSQLiteCleanupLock(t *testing.T) {
	s := mustOpen(t, sqliteURL(t))
	for i := range 2 {
		unlock, ok, err := s.LockCleanup(t.Context())
		if err != nil || !ok {
			t.Fatalf("LockCleanup %d = %v, %v; want granted", i, ok, err)
		}
		defer unlock()
	}
}
