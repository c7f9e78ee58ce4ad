package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmts caches prepared statements of one pool by query text. SQLite
// otherwise parses and plans every query on every call (a sixth of an
// authenticated read, by profile); database/sql re-prepares a statement on
// each connection that needs it, so a cached *sql.Stmt stays valid across
// reconnects.
type stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmts(db *sql.DB) *stmts { return &stmts{db: db, m: map[string]*sql.Stmt{}} }

// get returns the prepared form of query (already bound to the dialect).
func (c *stmts) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query) //nolint:sqlclosecheck // kept in the cache; closed by close
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

func (c *stmts) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = map[string]*sql.Stmt{}
	return errors.Join(errs...)
}
