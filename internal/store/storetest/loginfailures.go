package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

// recordFailure counts a failure under key that is never taken back.
func recordFailure(ctx context.Context, s store.Store, key string, at time.Time) error {
	return s.RecordLoginAttempt(ctx, key, "", at)
}

func testLoginFailures(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("count, oldest and clear", func(t *testing.T) {
		ctx, s := fresh(t, open)
		const a, b = "account:ann@example.com", "ip:192.0.2.1"
		for _, f := range []struct {
			key string
			at  time.Time
		}{
			{a, at(2 * time.Minute)}, {a, base}, {a, at(time.Minute)}, {a, at(time.Minute)},
			{b, at(time.Minute)},
		} {
			wantErr(t, "record failure", recordFailure(ctx, s, f.key, f.at), nil)
		}

		tests := map[string]struct {
			key        string
			since      time.Time
			wantCount  int
			wantOldest time.Time
		}{
			"all of a":                {key: a, since: base, wantCount: 4, wantOldest: stored(base)},
			"since is inclusive":      {key: a, since: at(time.Minute), wantCount: 3, wantOldest: stored(at(time.Minute))},
			"since excludes earlier":  {key: a, since: at(time.Minute + time.Microsecond), wantCount: 1, wantOldest: stored(at(2 * time.Minute))},
			"none in window":          {key: a, since: at(time.Hour), wantCount: 0},
			"keys are separate":       {key: b, since: base, wantCount: 1, wantOldest: stored(at(time.Minute))},
			"unknown key has nothing": {key: "ip:198.51.100.7", since: base, wantCount: 0},
		}
		for name, tc := range tests {
			count, oldest, err := s.LoginFailures(ctx, tc.key, tc.since)
			wantErr(t, name, err, nil)
			wantEqual(t, name+": count", count, tc.wantCount)
			wantEqual(t, name+": oldest", oldest, tc.wantOldest)
		}

		wantErr(t, "ClearLoginFailures", s.ClearLoginFailures(ctx, a), nil)
		wantErr(t, "ClearLoginFailures unknown", s.ClearLoginFailures(ctx, "nobody"), nil)
		count, _, err := s.LoginFailures(ctx, a, base)
		wantErr(t, "LoginFailures a", err, nil)
		wantEqual(t, "cleared count", count, 0)
		count, _, err = s.LoginFailures(ctx, b, base)
		wantErr(t, "LoginFailures b", err, nil)
		wantEqual(t, "other key kept", count, 1)
	})

	t.Run("attempts count until taken back", func(t *testing.T) {
		ctx, s := fresh(t, open)
		const a = "account:ann@example.com"
		wantErr(t, "record failure", recordFailure(ctx, s, a, base), nil)
		wantErr(t, "RecordLoginAttempt x", s.RecordLoginAttempt(ctx, a, "x", at(time.Second)), nil)
		wantErr(t, "RecordLoginAttempt y", s.RecordLoginAttempt(ctx, a, "y", at(time.Second)), nil)
		count, _, err := s.LoginFailures(ctx, a, base)
		wantErr(t, "LoginFailures", err, nil)
		wantEqual(t, "failures and pending attempts", count, 3)
		wantErr(t, "ForgetLoginAttempt x", s.ForgetLoginAttempt(ctx, a, "x"), nil)
		wantErr(t, "ForgetLoginAttempt x again", s.ForgetLoginAttempt(ctx, a, "x"), nil)
		wantErr(t, "ForgetLoginAttempt of another key", s.ForgetLoginAttempt(ctx, "ip:192.0.2.1", "y"), nil)
		count, _, err = s.LoginFailures(ctx, a, base)
		wantErr(t, "LoginFailures", err, nil)
		wantEqual(t, "only x taken back", count, 2)
		if err := s.ForgetLoginAttempt(ctx, a, ""); err == nil {
			t.Error("ForgetLoginAttempt with no attempt named: no error, want one (it would take back plain failures)")
		}
	})

	t.Run("delete before", func(t *testing.T) {
		ctx, s := fresh(t, open)
		const a, b = "account:ann@example.com", "ip:192.0.2.1"
		for _, f := range []struct {
			key string
			at  time.Time
		}{
			{a, base}, {a, at(time.Minute)}, {a, at(2 * time.Minute)},
			{b, base}, {b, at(3 * time.Minute)},
		} {
			wantErr(t, "record failure", recordFailure(ctx, s, f.key, f.at), nil)
		}

		// Steps run in order, each on what the previous ones left. Which
		// rows a partial batch takes is not specified, only how many.
		steps := []struct {
			name        string
			before      time.Time
			limit       int
			wantDeleted int
			wantLeft    map[string]int // failures left by key; nil: only the total is known
			wantTotal   int
		}{
			{name: "nothing that old", before: base, limit: 10, wantDeleted: 0, wantLeft: map[string]int{a: 3, b: 2}, wantTotal: 5},
			{name: "before is exclusive", before: at(time.Minute), limit: 10, wantDeleted: 2, wantLeft: map[string]int{a: 2, b: 1}, wantTotal: 3},
			{name: "a batch stops at its limit", before: at(time.Hour), limit: 2, wantDeleted: 2, wantTotal: 1},
			{name: "the next batch takes the rest", before: at(time.Hour), limit: 2, wantDeleted: 1, wantLeft: map[string]int{a: 0, b: 0}},
			{name: "empty table", before: at(time.Hour), limit: 2, wantDeleted: 0, wantLeft: map[string]int{a: 0, b: 0}},
		}
		for _, st := range steps {
			n, err := s.DeleteLoginFailuresBefore(ctx, st.before, st.limit)
			wantErr(t, st.name, err, nil)
			wantEqual(t, st.name+": deleted", n, st.wantDeleted)
			total := 0
			for _, key := range []string{a, b} {
				count, _, err := s.LoginFailures(ctx, key, base)
				wantErr(t, st.name+": LoginFailures "+key, err, nil)
				total += count
				if want, ok := st.wantLeft[key]; ok {
					wantEqual(t, st.name+": left under "+key, count, want)
				}
			}
			wantEqual(t, st.name+": left in all", total, st.wantTotal)
		}
	})
}
