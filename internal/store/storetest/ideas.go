package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

// newIdea builds an idea of userID with scores i/e/c created at base+d.
func newIdea(id, userID string, impact, ease, confidence int, d time.Duration) store.Idea {
	return store.Idea{
		ID: id, UserID: userID, Content: "idea " + id,
		Impact: impact, Ease: ease, Confidence: confidence,
		CreatedAt: at(d),
	}
}

func mustCreateIdeas(t *testing.T, s store.Store, ideas ...store.Idea) {
	t.Helper()
	for _, i := range ideas {
		if err := s.CreateIdea(t.Context(), i); err != nil {
			t.Fatalf("CreateIdea(%s): %v", i.ID, err)
		}
	}
}

func ideaIDs(ideas []store.Idea) []string {
	ids := make([]string, len(ideas))
	for n, i := range ideas {
		ids[n] = i.ID
	}
	return ids
}

func testIdeas(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("create and list round trip", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		i := newIdea("i1", u.ID, 7, 8, 9, 0)
		i.CreatedAt = base.In(time.FixedZone("X", -7*3600))
		mustCreateIdeas(t, s, i)
		got, err := s.ListIdeas(ctx, u.ID, 10, 0)
		wantErr(t, "ListIdeas", err, nil)
		wantEqual(t, "ideas", got, []store.Idea{storedIdea(i)})
	})

	t.Run("create errors", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		mustCreateIdeas(t, s, newIdea("i1", u.ID, 1, 1, 1, 0))
		wantErr(t, "unknown user", s.CreateIdea(ctx, newIdea("i2", "user-nobody", 1, 1, 1, 0)), store.ErrNotFound)
		wantErr(t, "duplicate id", s.CreateIdea(ctx, newIdea("i1", u.ID, 2, 2, 2, 0)), store.ErrConflict)
	})

	t.Run("order: score, then newest, then id", func(t *testing.T) {
		ctx, s := fresh(t, open)
		ann := mustCreateUser(t, s, newUser("ann"))
		bob := mustCreateUser(t, s, newUser("bob"))
		mustCreateIdeas(t, s,
			newIdea("a", ann.ID, 5, 5, 5, 0),                    // 15, oldest
			newIdea("b", ann.ID, 10, 10, 10, 0),                 // 30
			newIdea("c", ann.ID, 3, 6, 6, time.Microsecond),     // 15, 1µs newer than a
			newIdea("d", ann.ID, 6, 6, 3, time.Microsecond),     // 15, same time as c: id decides
			newIdea("e", ann.ID, 1, 1, 1, time.Hour),            // 3, newest but lowest
			newIdea("f", ann.ID, 9, 3, 3, 999*time.Microsecond), // 15, same second as a, c, d
			newIdea("z", bob.ID, 10, 10, 10, 0),                 // another user's
		)
		got, err := s.ListIdeas(ctx, ann.ID, 100, 0)
		wantErr(t, "ListIdeas", err, nil)
		wantEqual(t, "order", ideaIDs(got), []string{"b", "f", "d", "c", "a", "e"})

		got, err = s.ListIdeas(ctx, "user-nobody", 100, 0)
		wantErr(t, "ListIdeas unknown user", err, nil)
		wantEqual(t, "unknown user's ideas", len(got), 0)
	})

	t.Run("pages neither overlap nor skip", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		// Few distinct scores and times, so most ideas tie on something.
		var all []store.Idea
		for n := range 25 {
			all = append(all, newIdea(fmt.Sprintf("i%02d", (n*7)%25), u.ID, 1+n%3, 2, 3, time.Duration(n%4)*time.Microsecond))
		}
		mustCreateIdeas(t, s, all...)
		full, err := s.ListIdeas(ctx, u.ID, 1000, 0)
		wantErr(t, "ListIdeas all", err, nil)
		wantEqual(t, "count", len(full), len(all))

		for _, size := range []int{1, 4, 7, 25, 30} {
			var paged []store.Idea
			for offset := 0; ; offset += size {
				page, err := s.ListIdeas(ctx, u.ID, size, offset)
				wantErr(t, "ListIdeas page", err, nil)
				paged = append(paged, page...)
				if len(page) < size {
					break
				}
			}
			wantEqual(t, fmt.Sprintf("pages of %d", size), ideaIDs(paged), ideaIDs(full))
		}
		ids := ideaIDs(full)
		slices.Sort(ids)
		if len(slices.Compact(ids)) != len(all) {
			t.Fatalf("duplicate ids in %v", ideaIDs(full))
		}

		page, err := s.ListIdeas(ctx, u.ID, 0, 0)
		wantErr(t, "ListIdeas limit 0", err, nil)
		wantEqual(t, "limit 0", len(page), 0)
		page, err = s.ListIdeas(ctx, u.ID, 10, 100)
		wantErr(t, "ListIdeas past the end", err, nil)
		wantEqual(t, "past the end", len(page), 0)
	})

	t.Run("update keeps CreatedAt and reorders", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		mustCreateIdeas(t, s, newIdea("low", u.ID, 1, 1, 1, 0), newIdea("high", u.ID, 5, 5, 5, 0))

		change := newIdea("low", u.ID, 9, 9, 9, time.Hour) // CreatedAt must be ignored
		change.Content = "better"
		got, err := s.UpdateIdea(ctx, change)
		wantErr(t, "UpdateIdea", err, nil)
		want := change
		want.CreatedAt = stored(base)
		wantEqual(t, "updated", got, want)

		list, err := s.ListIdeas(ctx, u.ID, 10, 0)
		wantErr(t, "ListIdeas", err, nil)
		wantEqual(t, "after update", list, []store.Idea{want, storedIdea(newIdea("high", u.ID, 5, 5, 5, 0))})
	})

	t.Run("delete", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		keep := newIdea("keep", u.ID, 1, 1, 1, 0)
		mustCreateIdeas(t, s, newIdea("gone", u.ID, 1, 1, 1, 0), keep)
		wantErr(t, "DeleteIdea", s.DeleteIdea(ctx, u.ID, "gone"), nil)
		wantErr(t, "DeleteIdea again", s.DeleteIdea(ctx, u.ID, "gone"), store.ErrNotFound)
		list, err := s.ListIdeas(ctx, u.ID, 10, 0)
		wantErr(t, "ListIdeas", err, nil)
		wantEqual(t, "after delete", list, []store.Idea{storedIdea(keep)})
	})

	t.Run("another user's idea is not found", func(t *testing.T) {
		ctx, s := fresh(t, open)
		ann := mustCreateUser(t, s, newUser("ann"))
		bob := mustCreateUser(t, s, newUser("bob"))
		mine := newIdea("mine", ann.ID, 4, 4, 4, 0)
		mustCreateIdeas(t, s, mine)

		calls := map[string]func() error{
			"update by other": func() error {
				_, err := s.UpdateIdea(ctx, newIdea("mine", bob.ID, 1, 1, 1, 0))
				return err
			},
			"delete by other": func() error { return s.DeleteIdea(ctx, bob.ID, "mine") },
			"update unknown": func() error {
				_, err := s.UpdateIdea(ctx, newIdea("nope", ann.ID, 1, 1, 1, 0))
				return err
			},
			"delete unknown": func() error { return s.DeleteIdea(ctx, ann.ID, "nope") },
		}
		for name, call := range calls {
			wantErr(t, name, call(), store.ErrNotFound)
		}
		list, err := s.ListIdeas(ctx, ann.ID, 10, 0)
		wantErr(t, "ListIdeas", err, nil)
		wantEqual(t, "owner's idea untouched", list, []store.Idea{storedIdea(mine)})
	})
}

// listingOrder sorts ideas as the README says ListIdeas does: highest
// score first, ties newest first (microseconds), then by id.
func listingOrder(ideas []store.Idea) []store.Idea {
	out := slices.Clone(ideas)
	slices.SortFunc(out, func(a, b store.Idea) int {
		if d := (b.Impact + b.Ease + b.Confidence) - (a.Impact + a.Ease + a.Confidence); d != 0 {
			return d
		}
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out
}

// wantPages checks every page of userID (several page sizes, every
// offset) against the ideas in listing order.
func wantPages(t *testing.T, s store.Store, userID string, want []store.Idea) {
	t.Helper()
	want = listingOrder(want)
	for _, limit := range []int{1, 10, 13} {
		for offset := 0; offset <= len(want)+limit; offset++ {
			got, err := s.ListIdeas(t.Context(), userID, limit, offset)
			if err != nil {
				t.Fatalf("ListIdeas(limit %d, offset %d): %v", limit, offset, err)
			}
			exp := want[min(offset, len(want)):min(offset+limit, len(want))]
			if !slices.Equal(ideaIDs(got), ideaIDs(exp)) {
				t.Fatalf("ListIdeas(limit %d, offset %d) = %v, want %v", limit, offset, ideaIDs(got), ideaIDs(exp))
			}
		}
	}
}

// deepIdeas are n ideas of userID with few distinct scores and times, so
// that most of them tie on something.
func deepIdeas(prefix, userID string, n int) []store.Idea {
	var ideas []store.Idea
	for k := range n {
		ideas = append(ideas, newIdea(fmt.Sprintf("%s%03d", prefix, (k*37)%n), userID, 1+k%3, 1+k%2, 4, time.Duration(k%5)*time.Microsecond))
	}
	return ideas
}

// changeIdeas updates, deletes and adds ideas of userID through s, and
// returns the ideas as they are then.
func changeIdeas(t *testing.T, s store.Store, ideas []store.Idea, prefix string) []store.Idea {
	t.Helper()
	ctx := t.Context()
	out := slices.Clone(ideas)
	// The listing's first idea drops to the bottom, one from the middle
	// rises to the top, one goes, one arrives.
	first := listingOrder(out)[0]
	mid := listingOrder(out)[len(out)/2]
	for i, idea := range out {
		switch idea.ID {
		case first.ID:
			out[i].Impact, out[i].Ease, out[i].Confidence = 1, 1, 1
		case mid.ID:
			out[i].Impact, out[i].Ease, out[i].Confidence = 10, 10, 10
		}
		if idea.ID == first.ID || idea.ID == mid.ID {
			if _, err := s.UpdateIdea(ctx, out[i]); err != nil {
				t.Fatalf("UpdateIdea: %v", err)
			}
		}
	}
	gone := listingOrder(out)[len(out)/3]
	if err := s.DeleteIdea(ctx, gone.UserID, gone.ID); err != nil {
		t.Fatalf("DeleteIdea: %v", err)
	}
	out = slices.DeleteFunc(out, func(i store.Idea) bool { return i.ID == gone.ID })
	added := newIdea(prefix+"new", gone.UserID, 2, 2, 4, 3*time.Microsecond)
	mustCreateIdeas(t, s, added)
	return append(out, storedIdea(added))
}

func testDeepPages(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("every page in order, before and after changes", func(t *testing.T) {
		_, s := fresh(t, open)
		ann := mustCreateUser(t, s, newUser("ann"))
		bob := mustCreateUser(t, s, newUser("bob"))
		ideas := deepIdeas("a", ann.ID, 61)
		mustCreateIdeas(t, s, ideas...)
		mustCreateIdeas(t, s, deepIdeas("b", bob.ID, 30)...) // another user's, same scores and times
		for i := range ideas {
			ideas[i] = storedIdea(ideas[i])
		}
		wantPages(t, s, ann.ID, ideas)
		ideas = changeIdeas(t, s, ideas, "a")
		wantPages(t, s, ann.ID, ideas)
		wantPages(t, s, "user-nobody", nil)
	})
	t.Run("many at once on a cold store", func(t *testing.T) { concurrentDeepPages(t, open) })
}

// concurrentDeepPages has many more callers than a store has connections
// ask for deep pages of one user at once, on a store that has not listed
// deep yet: each must get its page (it once waited forever for a connection
// the others held).
func concurrentDeepPages(t *testing.T, open func(t *testing.T) store.Store) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a deadlock fails instead of hanging
	defer cancel()
	_, s := fresh(t, open)
	for round := range 5 { // the callers race; a few fresh stores make a lost race likely
		if round > 0 {
			s = open(t)
		}
		ann := mustCreateUser(t, s, newUser("ann"))
		ideas := deepIdeas("a", ann.ID, 40)
		mustCreateIdeas(t, s, ideas...)
		want := listingOrder(ideas)
		const callers = 64
		errs := make(chan error, callers)
		start := make(chan struct{})
		for n := range callers {
			go func() {
				<-start
				offset := 20 + n%15
				got, err := s.ListIdeas(ctx, ann.ID, 5, offset)
				switch {
				case err != nil:
					errs <- fmt.Errorf("ListIdeas(offset %d): %w", offset, err)
				case !slices.Equal(ideaIDs(got), ideaIDs(want[offset:offset+5])):
					errs <- fmt.Errorf("ListIdeas(offset %d) = %v, want %v", offset, ideaIDs(got), ideaIDs(want[offset:offset+5]))
				default:
					errs <- nil
				}
			}()
		}
		close(start)
		for range callers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// RunReplicas checks what two stores on one database (two replicas) must
// agree on. open returns both, on a new, empty, migrated database.
func RunReplicas(t *testing.T, open func(t *testing.T) (store.Store, store.Store)) {
	t.Run("a change through one replica is in the other's deep pages", func(t *testing.T) {
		t.Parallel()
		a, b := open(t)
		ann := mustCreateUser(t, a, newUser("ann"))
		ideas := deepIdeas("a", ann.ID, 45)
		mustCreateIdeas(t, a, ideas...)
		for i := range ideas {
			ideas[i] = storedIdea(ideas[i])
		}
		wantPages(t, b, ann.ID, ideas) // b remembers where its pages begin
		ideas = changeIdeas(t, a, ideas, "a")
		wantPages(t, b, ann.ID, ideas)
		wantPages(t, a, ann.ID, ideas)
	})
}
