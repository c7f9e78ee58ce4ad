package keyset_test

import (
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/keyset"
)

// walker moves a keyset through time in random steps, as a server would,
// and checks the rotation invariants at many instants between the steps,
// when no write happens.
type walker struct {
	t      *testing.T
	p      keyset.Policy
	rng    *mrand.Rand
	gen    keyset.Generator
	ks     keyset.Keyset
	now    time.Time
	exempt map[string]bool      // keys made active at once (bootstrap, revocation)
	signed map[string]time.Time // last instant each key was seen signing
	gone   map[string]bool      // revoked keys: their tokens are meant to die
}

func newWalker(t *testing.T, seed uint64) *walker {
	return &walker{
		t: t, p: testPolicy.WithDefaults(), rng: mrand.New(mrand.NewPCG(seed, 0)),
		gen: newDetGen(byte(seed)), now: t0,
		exempt: map[string]bool{}, signed: map[string]time.Time{}, gone: map[string]bool{},
	}
}

func (w *walker) record(changes []keyset.Change) {
	generated := map[string]bool{}
	for _, c := range changes {
		switch c.Kind {
		case keyset.Generated:
			generated[c.KeyID] = true
		case keyset.Activated:
			if generated[c.KeyID] && !c.At.After(w.now) {
				w.exempt[c.KeyID] = true
			}
		case keyset.Revoked:
			w.gone[c.KeyID] = true
		}
	}
}

func (w *walker) apply(name string, f func() (keyset.Keyset, []keyset.Change, error)) {
	w.t.Helper()
	ks, changes, err := f()
	if err != nil {
		w.t.Fatalf("%s at %s: %v", name, w.now, err)
	}
	w.ks = ks
	w.record(changes)
	if err := ks.Validate(); err != nil {
		w.t.Fatalf("%s at %s produced an invalid keyset: %v", name, w.now, err)
	}
	data, err := keyset.Marshal(ks)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := keyset.Parse(data); err != nil {
		w.t.Fatalf("%s: stored keyset does not parse: %v", name, err)
	}
}

// observe checks the invariants at every instant of interest in
// [w.now, until): each key boundary, just before it, and a few random ones.
func (w *walker) observe(until time.Time) {
	w.t.Helper()
	instants := []time.Time{w.now}
	for _, k := range w.ks.Keys {
		for _, b := range []*time.Time{&k.PublishedAt, &k.ActiveAt, k.RetiredAt, k.RemoveAfter} {
			if b != nil {
				instants = append(instants, *b, b.Add(-time.Nanosecond))
			}
		}
	}
	for range 5 {
		instants = append(instants, w.now.Add(time.Duration(w.rng.Int64N(int64(until.Sub(w.now))))))
	}
	slices.SortFunc(instants, time.Time.Compare)
	for _, at := range instants {
		if at.Before(w.now) || !at.Before(until) {
			continue
		}
		w.check(at)
	}
}

func (w *walker) check(now time.Time) {
	w.t.Helper()
	active := 0
	for _, k := range w.ks.Keys {
		if keyset.State(k, now) == keyset.StateActive {
			active++
		}
	}
	if active > 1 {
		w.t.Fatalf("%s: %d keys active", now, active)
	}
	s, ok := keyset.Signing(w.ks, now)
	if !ok {
		w.t.Fatalf("%s: no signing key", now)
	}
	published := ids(keyset.Published(w.ks, now))
	if !slices.Contains(published, s.ID) {
		w.t.Fatalf("%s: signing key %s not published", now, s.ID)
	}
	if prop := w.p.JWKSMaxAge + w.p.ClockSkew; !w.exempt[s.ID] && now.Sub(s.PublishedAt) < prop {
		w.t.Fatalf("%s: key %s signs %s after publication, want >= %s", now, s.ID, now.Sub(s.PublishedAt), prop)
	}
	if t, ok := w.signed[s.ID]; !ok || now.After(t) {
		w.signed[s.ID] = now
	}
	for kid, last := range w.signed {
		if w.gone[kid] {
			continue
		}
		if now.Before(last.Add(w.p.MaxTokenTTL+w.p.ClockSkew)) && !slices.Contains(published, kid) {
			w.t.Fatalf("%s: key %s signed at %s but is no longer published", now, kid, last)
		}
	}
}

// TestWalkSteadyState advances in steps shorter than an interval: besides
// the safety invariants, keys follow the rotation cadence and each next key
// is published (nearly) a whole interval ahead.
func TestWalkSteadyState(t *testing.T) {
	const maxStep = 3 * time.Hour
	for seed := range uint64(walkSeeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w := newWalker(t, seed)
			for w.now.Before(at(6 * interval)) {
				w.apply("advance", func() (keyset.Keyset, []keyset.Change, error) {
					return keyset.Advance(w.ks, w.p, w.now, w.gen)
				})
				if len(w.ks.Keys) > 4 {
					t.Fatalf("%s: %d keys", w.now, len(w.ks.Keys))
				}
				next := w.now.Add(time.Minute + time.Duration(w.rng.Int64N(int64(maxStep-time.Minute))))
				w.observe(next)
				w.now = next
			}
			// Cadence: every key after the bootstrap one starts exactly one
			// interval after its predecessor and was published a whole
			// interval ahead, up to one step of lateness.
			all := w.ks.Keys
			for i, k := range all {
				if i > 0 {
					prev := all[i-1].ActiveAt
					if !k.ActiveAt.Equal(prev.Add(interval)) {
						t.Errorf("key %d active at %s, want %s", i, k.ActiveAt, prev.Add(interval))
					}
				}
				if !w.exempt[k.ID] && k.ActiveAt.Sub(k.PublishedAt) < interval-maxStep {
					t.Errorf("key %d published only %s ahead", i, k.ActiveAt.Sub(k.PublishedAt))
				}
			}
			if n := len(w.signed); n < 6 {
				t.Errorf("only %d keys signed over 6 intervals", n)
			}
		})
	}
}

// TestWalkChaos mixes long pauses (a server that was down), rotation
// requests and revocations; the safety invariants must hold throughout.
func TestWalkChaos(t *testing.T) {
	for seed := range uint64(walkSeeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w := newWalker(t, 100+seed)
			w.apply("advance", func() (keyset.Keyset, []keyset.Change, error) {
				return keyset.Advance(w.ks, w.p, w.now, w.gen)
			})
			for w.now.Before(at(8 * interval)) {
				switch w.rng.IntN(10) {
				case 0:
					w.apply("request rotation", func() (keyset.Keyset, []keyset.Change, error) {
						return keyset.RequestRotation(w.ks, w.p, w.now, w.gen)
					})
				case 1:
					kid := w.ks.Keys[w.rng.IntN(len(w.ks.Keys))].ID
					w.apply("revoke", func() (keyset.Keyset, []keyset.Change, error) {
						return keyset.Revoke(w.ks, kid, w.p, w.now, w.gen)
					})
				default:
					w.apply("advance", func() (keyset.Keyset, []keyset.Change, error) {
						return keyset.Advance(w.ks, w.p, w.now, w.gen)
					})
				}
				step := time.Minute + time.Duration(w.rng.Int64N(int64(2*time.Hour)))
				if w.rng.IntN(8) == 0 {
					step = time.Duration(w.rng.Int64N(int64(3 * interval)))
				}
				next := w.now.Add(step + time.Nanosecond)
				w.observe(next)
				w.now = next
			}
		})
	}
}

// walkSeeds is how many random walks each walk test runs.
var walkSeeds = 8
