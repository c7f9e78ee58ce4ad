package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// Deep pages of ideas. OFFSET n makes the database step over n index
// entries: page 10,000 of a user with 100,000 ideas took 20-40 ms on SQLite
// and 110 ms on PostgreSQL, each. Instead, the store remembers a mark every
// listingMarkEvery ideas of a user's listing (the sort key of the last idea
// before it) and starts a deep page from the nearest mark below it, with a
// row comparison the listing index serves as a range: no more than
// listingMarkEvery entries are ever stepped over, whatever the depth.
//
// Marks are only good while the user's ideas do not change. Every insert,
// update and delete of an idea moves the user's idea_versions counter on in
// the same transaction (triggers of migration 0007), and a deep page reads
// the counter and its ideas in one read transaction: marks taken under
// another version are dropped and taken again. So a write through any
// replica is seen by the next deep page of every replica.

// listingMarkEvery is how many ideas apart the marks are. A variable for
// the store's tests, which page deep with a few ideas.
var listingMarkEvery = 200

// listingCacheUsers bounds the users whose marks are kept (about 25 KiB
// for a user with 100,000 ideas; none for one with fewer than 200).
const listingCacheUsers = 1024

// ideaKey is an idea's place in the listing order.
type ideaKey struct {
	score     int
	createdAt int64
	id        string
}

// listing is one user's marks: marks[j] is the key of the idea at position
// (j+1)*listingMarkEvery - 1.
type listing struct {
	mu      sync.Mutex // held while the marks are read or extended
	version int64
	marks   []ideaKey
	end     bool // no further marks: the listing ends before the next one
}

type listingCache struct {
	mu    sync.Mutex
	users map[string]*listing
}

func (c *listingCache) get(userID string) *listing {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.users[userID]; ok {
		return l
	}
	if c.users == nil {
		c.users = map[string]*listing{}
	}
	if len(c.users) >= listingCacheUsers {
		for k := range c.users { // any one
			delete(c.users, k)
			break
		}
	}
	l := &listing{version: -1}
	c.users[userID] = l
	return l
}

const afterKey = " AND (score_sum, created_at, id) < (?, ?, ?) "

// The statements of a deep page.
const (
	qVersion   = "SELECT version FROM idea_versions WHERE user_id = ?"
	qFirstMark = "SELECT score_sum, created_at, id FROM ideas WHERE user_id = ? " + listingOrder + " LIMIT 1 OFFSET ?"
	qNextMark  = "SELECT score_sum, created_at, id FROM ideas WHERE user_id = ? " + afterKey + listingOrder + " LIMIT 1 OFFSET ?"
	qPage      = "SELECT " + listingColumns + " FROM ideas WHERE user_id = ? " + afterKey + listingOrder + " LIMIT ? OFFSET ?"
)

// listDeep is ListIdeas for offset >= listingMarkEvery.
func (s *sqlStore) listDeep(ctx context.Context, userID string, limit, offset int) (_ []Idea, err error) {
	// Every statement is prepared before the transaction takes a
	// connection: preparing needs one of the pool's, and the requests
	// that wait below for this user's marks each hold one.
	_, r := s.prepared()
	prepared := map[string]*sql.Stmt{}
	for _, q := range []string{qVersion, qFirstMark, qNextMark, qPage} {
		st, err := r.get(ctx, s.d.bind(q)) //nolint:sqlclosecheck // cached; closed by Close
		if err != nil {
			return nil, err
		}
		prepared[q] = st
	}
	opts := &sql.TxOptions{ReadOnly: true}
	if s.d.name == "postgres" {
		opts.Isolation = sql.LevelRepeatableRead // one snapshot for the version and the rows
	} else {
		opts = nil // a read transaction on a reader connection: one WAL snapshot
	}
	tx, err := s.r.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := tx.Commit(); err == nil {
			err = cerr
		}
	}()
	inTx := map[string]*sql.Stmt{}
	stmt := func(q string) *sql.Stmt {
		if st, ok := inTx[q]; ok {
			return st
		}
		st := tx.StmtContext(ctx, prepared[q]) //nolint:sqlclosecheck // closed with the transaction
		inTx[q] = st
		return st
	}
	var version int64
	err = stmt(qVersion).QueryRowContext(ctx, userID).Scan(&version) //nolint:sqlclosecheck // the statement closes with the transaction; Scan closes the row
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}

	m, found, err := s.mark(ctx, stmt, userID, version, offset/listingMarkEvery)
	if err != nil {
		return nil, err
	}
	if !found {
		return []Idea{}, nil // past the end
	}
	rows, err := stmt(qPage).QueryContext( //nolint:sqlclosecheck // scanListing closes the rows; the statement closes with the transaction
		ctx, userID, m.score, m.createdAt, m.id, limit, offset-offset/listingMarkEvery*listingMarkEvery)
	if err != nil {
		return nil, err
	}
	return scanListing(rows, userID, limit)
}

// mark returns the k-th mark (k >= 1) of userID's listing at version,
// taking the marks it lacks, or found false if the listing ends before it.
// The user's marks are locked only while they are read or extended: the
// page itself is read without the lock.
func (s *sqlStore) mark(ctx context.Context, stmt func(string) *sql.Stmt, userID string, version int64, k int) (ideaKey, bool, error) {
	l := s.listing.get(userID)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.version != version {
		l.version, l.marks, l.end = version, nil, false
	}
	for len(l.marks) < k && !l.end {
		q, args := qFirstMark, []any{userID}
		if n := len(l.marks); n > 0 {
			q = qNextMark
			args = append(args, l.marks[n-1].score, l.marks[n-1].createdAt, l.marks[n-1].id)
		}
		args = append(args, listingMarkEvery-1)
		var m ideaKey
		err := stmt(q).QueryRowContext(ctx, args...).Scan(&m.score, &m.createdAt, &m.id) //nolint:sqlclosecheck // the statement closes with the transaction; Scan closes the row
		switch {
		case errors.Is(err, sql.ErrNoRows):
			l.end = true
		case err != nil:
			l.version = -1 // nothing half-taken is kept
			return ideaKey{}, false, err
		default:
			l.marks = append(l.marks, m)
		}
	}
	if len(l.marks) < k {
		return ideaKey{}, false, nil
	}
	return l.marks[k-1], true, nil
}
