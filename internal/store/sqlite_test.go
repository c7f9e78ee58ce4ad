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

func TestSQLiteOpen(t *testing.T) {
	testOpen(t, sqliteURL)
}

func TestSQLiteFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	path := filepath.Join(dir, "ideapool.db")
	s := mustOpen(t, "sqlite:"+path)
	if err := s.RecordLoginFailure(t.Context(), "k", time.Unix(0, 0)); err != nil {
		t.Fatalf("RecordLoginFailure: %v", err)
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
