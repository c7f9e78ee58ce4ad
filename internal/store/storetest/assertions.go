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

	t.Run("cleanup spares live ids", func(t *testing.T) {
		ctx, s := fresh(t, open)
		// 250 ids expire at base+1m; later calls each delete a bounded
		// batch of them, and every old id can be used again, while the
		// live ones still count as used.
		const old = 250
		for i := range old {
			wantErr(t, "UseClientAssertion old", s.UseClientAssertion(ctx, "c1", fmt.Sprintf("old-%d", i), at(time.Minute), base), nil)
		}
		for i := range 10 {
			wantErr(t, "UseClientAssertion new", s.UseClientAssertion(ctx, "c1", fmt.Sprintf("new-%d", i), at(time.Hour), at(2*time.Minute)), nil)
		}
		for i := range old {
			wantErr(t, "UseClientAssertion old again", s.UseClientAssertion(ctx, "c1", fmt.Sprintf("old-%d", i), at(time.Hour), at(2*time.Minute)), nil)
		}
		for i := range 10 {
			err := s.UseClientAssertion(ctx, "c1", fmt.Sprintf("new-%d", i), at(time.Hour), at(3*time.Minute))
			wantErr(t, "live id not cleaned up", err, store.ErrConflict)
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
