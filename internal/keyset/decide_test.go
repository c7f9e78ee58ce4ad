package keyset_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/keyset"
)

const (
	interval = 10 * time.Hour
	// removeDelay is MaxTokenTTL + ClockSkew of testPolicy.
	removeDelay = time.Hour + time.Minute
)

func TestSigningPublishedState(t *testing.T) {
	// old retired at 10h, cur signs 10h..20h, next published at 10h signs from 20h.
	ks := keyset.Keyset{Keys: []keyset.Key{
		sched("old", t0, t0, at(10*time.Hour), at(11*time.Hour)),
		sched("cur", at(-time.Hour), at(10*time.Hour), at(20*time.Hour), at(21*time.Hour)),
		sched("next", at(10*time.Hour), at(20*time.Hour)),
	}}
	cases := map[string]struct {
		now           time.Time
		wantSigning   string // empty: none
		wantPublished []string
		wantStates    []keyset.KeyState // of old, cur, next
	}{
		"before anything": {
			now: at(-2 * time.Hour), wantPublished: []string{},
			wantStates: []keyset.KeyState{keyset.StateNext, keyset.StateNext, keyset.StateNext},
		},
		"old signs": {
			now: at(time.Hour), wantSigning: "old", wantPublished: []string{"old", "cur"},
			wantStates: []keyset.KeyState{keyset.StateActive, keyset.StateNext, keyset.StateNext},
		},
		"switch instant": {
			now: at(10 * time.Hour), wantSigning: "cur", wantPublished: []string{"old", "cur", "next"},
			wantStates: []keyset.KeyState{keyset.StateRetired, keyset.StateActive, keyset.StateNext},
		},
		"old removed": {
			now: at(11 * time.Hour), wantSigning: "cur", wantPublished: []string{"cur", "next"},
			wantStates: []keyset.KeyState{keyset.StateRetired, keyset.StateActive, keyset.StateNext},
		},
		"pre-scheduled switch without a write": {
			now: at(20 * time.Hour), wantSigning: "next", wantPublished: []string{"cur", "next"},
			wantStates: []keyset.KeyState{keyset.StateRetired, keyset.StateRetired, keyset.StateActive},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			k, ok := keyset.Signing(ks, tc.now)
			if got := map[bool]string{true: k.ID}[ok]; got != tc.wantSigning {
				t.Errorf("Signing = %q, want %q", got, tc.wantSigning)
			}
			if got := ids(keyset.Published(ks, tc.now)); !slices.Equal(got, tc.wantPublished) {
				t.Errorf("Published = %v, want %v", got, tc.wantPublished)
			}
			for i, k := range ks.Keys {
				if got := keyset.State(k, tc.now); got != tc.wantStates[i] {
					t.Errorf("State(%s) = %s, want %s", k.ID, got, tc.wantStates[i])
				}
			}
		})
	}
}

func TestPlan(t *testing.T) {
	cases := map[string]struct {
		keys []keyset.Key
		now  time.Time
		// want: the decision's reason, the schedule of generated keys
		// (published, active), the retirements, removals and NextDue.
		wantReason   keyset.Reason
		wantGenerate [][2]time.Time
		wantRetire   map[string]time.Time
		wantRemove   []string
		wantNextDue  time.Time
	}{
		"first start: bootstrap and schedule": {
			now:          t0,
			wantReason:   keyset.ReasonBootstrap,
			wantGenerate: [][2]time.Time{{t0, t0}, {t0, at(interval)}},
			wantNextDue:  at(interval),
		},
		"only an active key: schedule one interval after it started": {
			keys:         []keyset.Key{sched("a", t0, t0)},
			now:          at(time.Hour),
			wantReason:   keyset.ReasonSchedule,
			wantGenerate: [][2]time.Time{{at(time.Hour), at(interval)}},
			wantRetire:   map[string]time.Time{"a": at(interval)},
			wantNextDue:  at(interval),
		},
		"late: never earlier than now + publish ahead": {
			keys:         []keyset.Key{sched("a", t0, t0)},
			now:          at(interval - 10*time.Minute),
			wantReason:   keyset.ReasonSchedule,
			wantGenerate: [][2]time.Time{{at(interval - 10*time.Minute), at(interval + 50*time.Minute)}},
			wantRetire:   map[string]time.Time{"a": at(interval + 50*time.Minute)},
			wantNextDue:  at(interval + 50*time.Minute),
		},
		"steady state: nothing to do until the next key signs": {
			keys: []keyset.Key{
				sched("a", t0, t0, at(interval), at(interval+removeDelay)),
				sched("b", t0, at(interval)),
			},
			now:         at(time.Hour),
			wantReason:  keyset.ReasonUpToDate,
			wantNextDue: at(interval),
		},
		"next key started signing: schedule the one after": {
			keys: []keyset.Key{
				sched("a", t0, t0, at(interval), at(interval+removeDelay)),
				sched("b", t0, at(interval)),
			},
			now:          at(interval),
			wantReason:   keyset.ReasonSchedule,
			wantGenerate: [][2]time.Time{{at(interval), at(2 * interval)}},
			wantRetire:   map[string]time.Time{"b": at(2 * interval)},
			wantNextDue:  at(interval + removeDelay),
		},
		"retired key past remove_after": {
			keys: []keyset.Key{
				sched("a", t0, t0, at(interval), at(interval+removeDelay)),
				sched("b", t0, at(interval), at(2*interval), at(2*interval+removeDelay)),
				sched("c", at(interval), at(2*interval)),
			},
			now:         at(interval + removeDelay),
			wantReason:  keyset.ReasonRemove,
			wantRemove:  []string{"a"},
			wantNextDue: at(2 * interval),
		},
		"retirement not recorded (hand-edited keyset)": {
			keys: []keyset.Key{
				sched("a", t0, t0),
				sched("b", t0, at(interval)),
			},
			now:         at(time.Hour),
			wantReason:  keyset.ReasonActivate,
			wantRetire:  map[string]time.Time{"a": at(interval)},
			wantNextDue: at(interval),
		},
		"long downtime: everything retired and removable": {
			keys: []keyset.Key{
				sched("a", t0, t0, at(interval), at(interval+removeDelay)),
			},
			now:          at(100 * interval),
			wantReason:   keyset.ReasonBootstrap,
			wantRemove:   []string{"a"},
			wantGenerate: [][2]time.Time{{at(100 * interval), at(100 * interval)}, {at(100 * interval), at(101 * interval)}},
			wantNextDue:  at(101 * interval),
		},
		"only a future key: bootstrap until it signs": {
			keys:         []keyset.Key{sched("b", t0, at(interval))},
			now:          t0,
			wantReason:   keyset.ReasonBootstrap,
			wantGenerate: [][2]time.Time{{t0, t0}},
			wantNextDue:  at(interval),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := keyset.Plan(keyset.Keyset{Keys: tc.keys}, testPolicy, tc.now)
			if d.Reason != tc.wantReason {
				t.Errorf("Reason = %s, want %s (%s)", d.Reason, tc.wantReason, d.Message)
			}
			var gen [][2]time.Time
			for _, g := range d.Generate {
				gen = append(gen, [2]time.Time{g.PublishedAt, g.ActiveAt})
			}
			if !slices.Equal(gen, tc.wantGenerate) {
				t.Errorf("Generate = %v, want %v", gen, tc.wantGenerate)
			}
			retire := map[string]time.Time{}
			for _, r := range d.Retire {
				retire[r.KeyID] = r.RetiredAt
				if want := r.RetiredAt.Add(removeDelay); !r.RemoveAfter.Equal(want) {
					t.Errorf("RemoveAfter(%s) = %s, want %s", r.KeyID, r.RemoveAfter, want)
				}
			}
			if len(retire) != len(tc.wantRetire) {
				t.Errorf("Retire = %v, want %v", retire, tc.wantRetire)
			}
			for id, want := range tc.wantRetire {
				if !retire[id].Equal(want) {
					t.Errorf("Retire[%s] = %s, want %s", id, retire[id], want)
				}
			}
			if !slices.Equal(d.Remove, tc.wantRemove) {
				t.Errorf("Remove = %v, want %v", d.Remove, tc.wantRemove)
			}
			if !d.NextDue.Equal(tc.wantNextDue) {
				t.Errorf("NextDue = %s, want %s", d.NextDue, tc.wantNextDue)
			}
			if d.UpToDate() != (tc.wantReason == keyset.ReasonUpToDate) {
				t.Errorf("UpToDate = %v", d.UpToDate())
			}
			if d.Message == "" {
				t.Error("empty Message")
			}
		})
	}
}

func TestPlanInvalidPolicy(t *testing.T) {
	d := keyset.Plan(keyset.Keyset{}, keyset.Policy{RSABits: 1}, t0)
	if d.Reason != keyset.ReasonInvalidPolicy || !d.UpToDate() {
		t.Errorf("Plan with invalid policy = %+v", d)
	}
	if _, _, err := keyset.Advance(keyset.Keyset{}, keyset.Policy{RSABits: 1}, t0, newDetGen(0)); err == nil {
		t.Error("Advance with invalid policy succeeded")
	}
}

func kinds(changes []keyset.Change) map[keyset.ChangeKind][]string {
	m := map[keyset.ChangeKind][]string{}
	for _, c := range changes {
		m[c.Kind] = append(m[c.Kind], c.KeyID)
	}
	return m
}

func TestAdvance(t *testing.T) {
	g := newDetGen(4)
	ks, changes, err := keyset.Advance(keyset.Keyset{}, testPolicy, t0, g)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Validate(); err != nil {
		t.Fatalf("Advance produced an invalid keyset: %v", err)
	}
	if len(ks.Keys) != 2 {
		t.Fatalf("bootstrap made %d keys, want 2", len(ks.Keys))
	}
	cur, next := ks.Keys[0], ks.Keys[1]
	if s, _ := keyset.Signing(ks, t0); s.ID != cur.ID {
		t.Errorf("signing key is not the bootstrap key")
	}
	if !next.ActiveAt.Equal(at(interval)) || !cur.RetiredAt.Equal(at(interval)) || !cur.RemoveAfter.Equal(at(interval+removeDelay)) {
		t.Errorf("schedule = cur %+v next %+v", cur, next)
	}
	k := kinds(changes)
	if len(k[keyset.Generated]) != 2 || !slices.Equal(k[keyset.Activated], []string{cur.ID}) || !slices.Equal(k[keyset.Retired], []string{cur.ID}) {
		t.Errorf("changes = %v", changes)
	}

	// Nothing due: the same keyset, no changes.
	same, changes, err := keyset.Advance(ks, testPolicy, at(time.Hour), g)
	if err != nil || len(changes) != 0 || !slices.Equal(ids(same.Keys), ids(ks.Keys)) {
		t.Fatalf("Advance when up to date = %v, %v, %v", ids(same.Keys), changes, err)
	}

	// At the switch: a third key is scheduled one interval later.
	ks2, changes, err := keyset.Advance(ks, testPolicy, at(interval), g)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks2.Keys) != 3 || !ks2.Keys[2].ActiveAt.Equal(at(2*interval)) {
		t.Fatalf("after switch: %+v", ks2.Keys)
	}
	if k := kinds(changes); len(k[keyset.Generated]) != 1 || !slices.Equal(k[keyset.Retired], []string{next.ID}) {
		t.Errorf("changes = %v", changes)
	}

	// The generator must be given when a key is due.
	if _, _, err := keyset.Advance(keyset.Keyset{}, testPolicy, t0, nil); err == nil {
		t.Error("Advance without generator succeeded")
	}
}

func TestRequestRotation(t *testing.T) {
	g := newDetGen(5)
	boot, _, err := keyset.Advance(keyset.Keyset{}, testPolicy, t0, g)
	if err != nil {
		t.Fatal(err)
	}
	const propagation = 6 * time.Minute // JWKSMaxAge + ClockSkew
	cases := map[string]struct {
		now        time.Time
		wantActive time.Time // new ActiveAt of the pre-published next key
	}{
		"next key published long ago: signs now": {now: at(5 * time.Hour), wantActive: at(5 * time.Hour)},
		"next key just published: signs once caches expired": {
			now: at(time.Minute), wantActive: at(propagation),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ks, changes, err := keyset.RequestRotation(boot, testPolicy, tc.now, g)
			if err != nil {
				t.Fatal(err)
			}
			if len(ks.Keys) != 3 {
				t.Fatalf("keys = %d, want 3 (current, rotated-in, new next)", len(ks.Keys))
			}
			cur, next, after := ks.Keys[0], ks.Keys[1], ks.Keys[2]
			if next.ID != boot.Keys[1].ID || !next.ActiveAt.Equal(tc.wantActive) {
				t.Errorf("next key %s active at %s, want %s at %s", next.ID, next.ActiveAt, boot.Keys[1].ID, tc.wantActive)
			}
			if !cur.RetiredAt.Equal(tc.wantActive) || !cur.RemoveAfter.Equal(tc.wantActive.Add(removeDelay)) {
				t.Errorf("current retires at %s / removed after %s", cur.RetiredAt, cur.RemoveAfter)
			}
			if !after.ActiveAt.Equal(tc.wantActive.Add(interval)) || !after.PublishedAt.Equal(tc.now) {
				t.Errorf("new next key %+v", after)
			}
			if next.ActiveAt.Sub(next.PublishedAt) < propagation {
				t.Errorf("rotated-in key signs %s after publication", next.ActiveAt.Sub(next.PublishedAt))
			}
			k := kinds(changes)
			if !slices.Equal(k[keyset.Activated], []string{next.ID}) || len(k[keyset.Generated]) != 1 {
				t.Errorf("changes = %v", changes)
			}
			if !tc.wantActive.After(tc.now) {
				return
			}
			// Asking again before the switch changes nothing.
			again, changes, err := keyset.RequestRotation(ks, testPolicy, tc.now, g)
			if err != nil || len(changes) != 0 || !slices.Equal(ids(again.Keys), ids(ks.Keys)) {
				t.Errorf("second request = %v, %v, %v", ids(again.Keys), changes, err)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	g := newDetGen(6)
	boot, _, err := keyset.Advance(keyset.Keyset{}, testPolicy, t0, g)
	if err != nil {
		t.Fatal(err)
	}
	cur, next := boot.Keys[0], boot.Keys[1]
	now := at(2 * time.Hour)

	t.Run("signing key: fresh key signs at once, next keeps its schedule", func(t *testing.T) {
		ks, changes, err := keyset.Revoke(boot, cur.ID, testPolicy, now, g)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(ids(ks.Keys), cur.ID) {
			t.Fatal("revoked key still in keyset")
		}
		s, ok := keyset.Signing(ks, now)
		if !ok || s.ID == next.ID || !s.ActiveAt.Equal(now) {
			t.Fatalf("signing after revoke = %+v", s)
		}
		if len(ks.Keys) != 2 || ks.Keys[1].ID != next.ID || !ks.Keys[1].ActiveAt.Equal(next.ActiveAt) {
			t.Errorf("next key changed: %+v", ks.Keys)
		}
		if !s.RetiredAt.Equal(next.ActiveAt) {
			t.Errorf("fresh key retires at %s, want %s", s.RetiredAt, next.ActiveAt)
		}
		k := kinds(changes)
		if !slices.Equal(k[keyset.Revoked], []string{cur.ID}) || !slices.Equal(k[keyset.Activated], []string{s.ID}) {
			t.Errorf("changes = %v", changes)
		}
	})
	t.Run("next key: removed and replaced by a new next key", func(t *testing.T) {
		ks, _, err := keyset.Revoke(boot, next.ID, testPolicy, now, g)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(ids(ks.Keys), next.ID) {
			t.Fatal("revoked key still in keyset")
		}
		if s, _ := keyset.Signing(ks, now); s.ID != cur.ID {
			t.Errorf("current key should keep signing")
		}
		if len(ks.Keys) != 2 || !ks.Keys[1].ActiveAt.Equal(at(interval)) {
			t.Errorf("keys after revoking next: %+v", ks.Keys)
		}
	})
	t.Run("unknown kid", func(t *testing.T) {
		if _, _, err := keyset.Revoke(boot, "nope", testPolicy, now, g); !errors.Is(err, keyset.ErrUnknownKey) {
			t.Errorf("err = %v, want ErrUnknownKey", err)
		}
	})
}

// TestLifetimeChanges: the removal time of a key covers every token it
// signed under the lifetimes of their day, and a key that still signs
// covers the next token's whole lifetime.
func TestLifetimeChanges(t *testing.T) {
	g := newDetGen(7)
	// Booted at t0 with tokens of 1h: key 0 signs, key 1 is next at 10h.
	boot, _, err := keyset.Advance(keyset.Keyset{}, testPolicy, t0, g)
	if err != nil {
		t.Fatal(err)
	}
	with := func(ttl time.Duration) keyset.Policy { p := testPolicy; p.MaxTokenTTL = ttl; return p }
	tests := map[string]struct {
		policy keyset.Policy
		now    time.Time
		rotate bool // request a rotation, else only advance
		// wantRemove is key 0's removal time: at least as late as every
		// token it signed (with 1h tokens until now) plus the clock skew.
		wantRemove time.Time
	}{
		"lifetimes lowered, then a rotation requested": {
			policy: with(5 * time.Minute), now: at(5 * time.Hour), rotate: true,
			// Tokens of 1h signed until 5h; removal at 5h + 1h + 1m.
			wantRemove: at(6*time.Hour + time.Minute),
		},
		"lifetimes unchanged, a rotation requested": {
			policy: testPolicy, now: at(5 * time.Hour), rotate: true,
			wantRemove: at(6*time.Hour + time.Minute),
		},
		"lifetimes raised while the key signs": {
			policy: with(3 * time.Hour), now: at(2 * time.Hour),
			// It signs until 10h, now with 3h tokens.
			wantRemove: at(13*time.Hour + time.Minute),
		},
		"lifetimes lowered while the key signs": {
			policy: with(5 * time.Minute), now: at(2 * time.Hour),
			// Tokens of 1h may have been signed until the change: the old
			// removal time stays.
			wantRemove: at(11*time.Hour + time.Minute),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var ks keyset.Keyset
			var err error
			if tc.rotate {
				ks, _, err = keyset.RequestRotation(boot, tc.policy, tc.now, g)
			} else {
				ks, _, err = keyset.Advance(boot, tc.policy, tc.now, g)
			}
			if err != nil {
				t.Fatal(err)
			}
			k := ks.Keys[0]
			if k.ID != boot.Keys[0].ID || k.RemoveAfter == nil || !k.RemoveAfter.Equal(tc.wantRemove) {
				t.Errorf("key %s removed after %v, want %s", k.ID, k.RemoveAfter, tc.wantRemove)
			}
		})
	}
}
