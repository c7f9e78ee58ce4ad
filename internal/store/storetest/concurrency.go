package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

func testConcurrency(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("concurrent writes and reads all succeed", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))

		// 64 clients: half create ideas, half read, and every client also
		// records a login failure, so writes contend with each other.
		const clients = 64
		errs := make(chan error, 2*clients)
		var wg sync.WaitGroup
		for n := range clients {
			wg.Go(func() {
				if n%2 == 0 {
					i := newIdea(fmt.Sprintf("i%02d", n), u.ID, 1+n%10, 5, 5, time.Duration(n)*time.Microsecond)
					errs <- s.CreateIdea(ctx, i)
				} else {
					_, err := s.ListIdeas(ctx, u.ID, 100, 0)
					errs <- err
				}
				errs <- recordFailure(ctx, s, "ip:192.0.2.1", at(time.Duration(n)*time.Second))
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			wantErr(t, "concurrent call", err, nil)
		}

		list, err := s.ListIdeas(ctx, u.ID, 100, 0)
		wantErr(t, "ListIdeas", err, nil)
		wantEqual(t, "ideas listed", len(list), clients/2)
		count, _, err := s.LoginFailures(ctx, "ip:192.0.2.1", base)
		wantErr(t, "LoginFailures", err, nil)
		wantEqual(t, "failures recorded", count, clients)
	})
}
