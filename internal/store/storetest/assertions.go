package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

func testClientAssertions(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("single use until expiry", func(t *testing.T) {
		ctx, s := fresh(t, open)
		// Steps run in order, each on what the previous ones left. Every
		// assertion is valid for five minutes from its use.
		steps := []struct {
			name     string
			clientID string
			jti      string
			now      time.Time
			wantErr  error
		}{
			{name: "first use", clientID: "c1", jti: "j1", now: base},
			{name: "replay", clientID: "c1", jti: "j1", now: at(time.Minute), wantErr: store.ErrConflict},
			{name: "replay just before expiry", clientID: "c1", jti: "j1", now: at(5*time.Minute - time.Microsecond), wantErr: store.ErrConflict},
			{name: "same jti, other client", clientID: "c2", jti: "j1", now: at(time.Minute)},
			{name: "other jti, same client", clientID: "c1", jti: "j2", now: at(time.Minute)},
			{name: "reusable at expiry", clientID: "c1", jti: "j1", now: at(5 * time.Minute)},
			{name: "replay of the reuse", clientID: "c1", jti: "j1", now: at(6 * time.Minute), wantErr: store.ErrConflict},
			{name: "reusable after expiry", clientID: "c2", jti: "j1", now: at(time.Hour)},
			{name: "replay after cleanup", clientID: "c2", jti: "j1", now: at(time.Hour + time.Second), wantErr: store.ErrConflict},
		}
		for _, st := range steps {
			err := s.UseClientAssertion(ctx, st.clientID, st.jti, st.now.Add(5*time.Minute), st.now)
			wantErr(t, st.name, err, st.wantErr)
		}
	})

	t.Run("delete expired ids in batches", func(t *testing.T) {
		ctx, s := fresh(t, open)
		// 25 ids expire at base+1m, 10 at base+1h.
		const old = 25
		for i := range old {
			wantErr(t, "UseClientAssertion old", s.UseClientAssertion(ctx, "c1", fmt.Sprintf("old-%d", i), at(time.Minute), base), nil)
		}
		for i := range 10 {
			wantErr(t, "UseClientAssertion new", s.UseClientAssertion(ctx, "c1", fmt.Sprintf("new-%d", i), at(time.Hour), base), nil)
		}
		// Steps run in order, each on what the previous ones left.
		steps := []struct {
			name  string
			now   time.Time
			limit int
			want  int
		}{
			{name: "none expired yet", now: at(time.Minute - time.Microsecond), limit: 10, want: 0},
			{name: "expired at now", now: at(time.Minute), limit: 10, want: 10},
			{name: "next batch", now: at(2 * time.Minute), limit: 10, want: 10},
			{name: "the rest", now: at(2 * time.Minute), limit: 10, want: 5},
			{name: "live ids stay", now: at(2 * time.Minute), limit: 10, want: 0},
		}
		for _, st := range steps {
			n, err := s.DeleteClientAssertions(ctx, st.now, st.limit)
			wantErr(t, st.name, err, nil)
			wantEqual(t, st.name+": deleted", n, st.want)
		}
		for i := range 10 {
			err := s.UseClientAssertion(ctx, "c1", fmt.Sprintf("new-%d", i), at(time.Hour), at(3*time.Minute))
			wantErr(t, "live id still used", err, store.ErrConflict)
		}
		for i := range old {
			wantErr(t, "deleted id usable again", s.UseClientAssertion(ctx, "c1", fmt.Sprintf("old-%d", i), at(time.Hour), at(3*time.Minute)), nil)
		}
	})

	concurrent := map[string]struct {
		usedBefore bool // an expired record of the id exists already
	}{
		"new id":     {},
		"expired id": {usedBefore: true},
	}
	for name, tc := range concurrent {
		t.Run("concurrent uses: exactly one wins/"+name, func(t *testing.T) {
			ctx, s := fresh(t, open)
			if tc.usedBefore {
				wantErr(t, "UseClientAssertion earlier", s.UseClientAssertion(ctx, "c1", "j1", at(-time.Minute), at(-2*time.Minute)), nil)
			}
			const n = 16
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					errs[i] = s.UseClientAssertion(ctx, "c1", "j1", at(5*time.Minute), base)
				})
			}
			wg.Wait()
			winners := 0
			for i, err := range errs {
				if err == nil {
					winners++
					continue
				}
				wantErr(t, fmt.Sprintf("use %d", i), err, store.ErrConflict)
			}
			wantEqual(t, "successful uses", winners, 1)
		})
	}
}
