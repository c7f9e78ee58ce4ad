package keyset

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// KeyState is where a key stands on its timeline at a given instant.
type KeyState string

const (
	// StateNext: published (or about to be), not signing yet.
	StateNext KeyState = "Next"
	// StateActive: signing.
	StateActive KeyState = "Active"
	// StateRetired: no longer signing, still published until RemoveAfter.
	StateRetired KeyState = "Retired"
)

// State reports k's state at now.
func State(k Key, now time.Time) KeyState {
	switch {
	case now.Before(k.ActiveAt):
		return StateNext
	case k.RetiredAt != nil && !now.Before(*k.RetiredAt):
		return StateRetired
	default:
		return StateActive
	}
}

// Signing returns the key that signs at now: the one with the latest
// ActiveAt <= now that is not retired at now. Every replica computes it
// from its own clock, so a pre-scheduled ActiveAt switches signing without
// any write.
func Signing(ks Keyset, now time.Time) (Key, bool) {
	i := signingIndex(ks.Keys, now)
	if i < 0 {
		return Key{}, false
	}
	return ks.Keys[i], true
}

func signingIndex(keys []Key, now time.Time) int {
	best := -1
	for i, k := range keys {
		if k.ActiveAt.After(now) || (k.RetiredAt != nil && !now.Before(*k.RetiredAt)) {
			continue
		}
		if best < 0 || k.ActiveAt.After(keys[best].ActiveAt) {
			best = i
		}
	}
	return best
}

// Published returns the keys that belong in the JWKS at now, ordered by
// ActiveAt: published and not past RemoveAfter.
func Published(ks Keyset, now time.Time) []Key {
	var out []Key
	for _, k := range ks.Keys {
		if isPublished(k, now) {
			out = append(out, k)
		}
	}
	slices.SortStableFunc(out, byActiveAt)
	return out
}

func isPublished(k Key, now time.Time) bool {
	return !k.PublishedAt.After(now) && (k.RemoveAfter == nil || now.Before(*k.RemoveAfter))
}

func byActiveAt(a, b Key) int { return a.ActiveAt.Compare(b.ActiveAt) }

// Reason says why a decision changes the keyset. A Decision carries the
// highest-ranked one that applies, in the order Revoked, RotationRequested,
// Bootstrap, Schedule, Activate, Remove.
type Reason string

const (
	// ReasonBootstrap: no key signs now, so one is made active at once.
	// Nothing is protected by waiting: no verifier holds a token from it.
	ReasonBootstrap Reason = "Bootstrap"
	// ReasonSchedule: no key is waiting to sign next, so one is published
	// now to sign one rotation interval after the current one started.
	ReasonSchedule Reason = "Schedule"
	// ReasonActivate: a key is (or will be) followed by a later one but its
	// retirement is not recorded yet; it retires when the next one signs.
	ReasonActivate Reason = "Activate"
	// ReasonRemove: a retired key is past RemoveAfter, every token it signed
	// has expired, and it leaves the JWKS.
	ReasonRemove Reason = "Remove"
	// ReasonRotationRequested: someone asked to rotate now (RequestRotation).
	ReasonRotationRequested Reason = "RotationRequested"
	// ReasonRevoked: a key was revoked (Revoke).
	ReasonRevoked Reason = "Revoked"
	// ReasonUpToDate: nothing to change until NextDue.
	ReasonUpToDate Reason = "UpToDate"
	// ReasonInvalidPolicy: the policy does not validate; nothing is planned.
	ReasonInvalidPolicy Reason = "InvalidPolicy"
)

// reasonOrder ranks reasons: a Decision reports the first that applies.
var reasonOrder = []Reason{
	ReasonRevoked, ReasonRotationRequested,
	ReasonBootstrap, ReasonSchedule, ReasonActivate, ReasonRemove,
}

// Decision is what Plan concluded: the changes that make the next keyset
// and why. Applying it (Advance) needs a Generator for Generate.
type Decision struct {
	// Reason is the highest-ranked reason that applies (see reasonOrder).
	Reason Reason
	// Message explains every change, for logs and conditions.
	Message string
	// Remove lists the kids that leave the keyset.
	Remove []string
	// Generate lists the keys to create, with their schedule.
	Generate []PendingKey
	// Retire lists existing keys whose retirement is set or moved.
	Retire []Retirement
	// NextDue is the next instant after now at which anything changes in
	// the resulting keyset (a key starts signing, retires or must be
	// removed): callers sleep or requeue until then. Zero when nothing is
	// scheduled.
	NextDue time.Time
}

// UpToDate reports whether the decision changes nothing.
func (d Decision) UpToDate() bool {
	return len(d.Remove) == 0 && len(d.Generate) == 0 && len(d.Retire) == 0
}

// PendingKey is a key Plan wants generated.
type PendingKey struct {
	Algorithm   Algorithm
	PublishedAt time.Time
	ActiveAt    time.Time
	RetiredAt   *time.Time
	RemoveAfter *time.Time
}

// Retirement sets when an existing key stops signing and leaves the JWKS.
type Retirement struct {
	KeyID       string
	RetiredAt   time.Time
	RemoveAfter time.Time
}

// Plan decides what the keyset should become at now, in this order:
//
//  1. activate: record the retirement of every key followed by a later one;
//  2. remove: drop keys past RemoveAfter;
//  3. bootstrap: if no key signs now, make a new key active immediately;
//  4. schedule: if no key is waiting to sign next, publish one now with
//     ActiveAt = the last key's ActiveAt + RotationInterval, but never
//     earlier than now + PublishAhead; the key before it retires then.
//
// Plan is pure; Advance applies the decision.
func Plan(ks Keyset, p Policy, now time.Time) Decision {
	if err := p.Validate(); err != nil {
		return Decision{Reason: ReasonInvalidPolicy, Message: err.Error()}
	}
	d := newDraft(ks)
	d.plan(p.WithDefaults(), now)
	return d.decision(now)
}

// draft is a keyset being changed: pending keys (to be generated) have an
// empty ID. Diffing it against the original gives decisions and changes.
type draft struct {
	keys    []Key
	orig    map[string]Key
	removed []string
	revoked string
	reasons []Reason
	notes   []string
}

func newDraft(ks Keyset) *draft {
	d := &draft{orig: make(map[string]Key, len(ks.Keys))}
	for _, k := range ks.Keys {
		d.orig[k.ID] = k
		d.keys = append(d.keys, cloneKey(k))
	}
	return d
}

func cloneKey(k Key) Key {
	if k.RetiredAt != nil {
		t := *k.RetiredAt
		k.RetiredAt = &t
	}
	if k.RemoveAfter != nil {
		t := *k.RemoveAfter
		k.RemoveAfter = &t
	}
	k.Private = slices.Clone(k.Private)
	return k
}

func (d *draft) note(r Reason, format string, args ...any) {
	if !slices.Contains(d.reasons, r) {
		d.reasons = append(d.reasons, r)
	}
	d.notes = append(d.notes, fmt.Sprintf(format, args...))
}

// plan runs the Plan steps on the draft.
func (d *draft) plan(p Policy, now time.Time) {
	d.normalize(p, now)
	d.removeExpired(now)
	if signingIndex(d.keys, now) < 0 {
		d.add(p.Algorithm, now, now)
		d.note(ReasonBootstrap, "no key signs at %s: new key active immediately", stamp(now))
	}
	if last := d.last(); !last.ActiveAt.After(now) {
		at := maxTime(last.ActiveAt.Add(p.RotationInterval), now.Add(p.PublishAhead))
		d.add(p.Algorithm, now, at)
		d.note(ReasonSchedule, "no next key: new key published now, signing from %s", stamp(at))
	}
	d.normalize(p, now)
}

// normalize makes each key retire exactly when the key after it starts
// signing, and un-schedules the retirement of the last key (its successor
// was revoked; a new one is scheduled next). Retirements already in the
// past are left alone: tokens were issued against them.
//
// The tokens a key signed so far were issued under the lifetimes of their
// day, each capped at the key's removal time of that day: when the
// retirement moves, the old window (removal minus retirement) moves with it,
// never past the old removal time, so a rotation requested after the
// lifetimes were lowered still covers the longer tokens issued before. And
// when lifetimes grow, the removal time of a key that still signs grows with
// them, so the next token gets the new lifetime whole.
func (d *draft) normalize(p Policy, now time.Time) {
	slices.SortStableFunc(d.keys, byActiveAt)
	for i := range d.keys {
		k := &d.keys[i]
		if k.RetiredAt != nil && !k.RetiredAt.After(now) {
			continue
		}
		if i == len(d.keys)-1 {
			k.RetiredAt, k.RemoveAfter = nil, nil
			continue
		}
		succ := d.keys[i+1].ActiveAt
		ra := p.removeAfter(succ)
		if k.RetiredAt != nil && k.RemoveAfter != nil {
			carried := succ.Add(k.RemoveAfter.Sub(*k.RetiredAt))
			if carried.After(*k.RemoveAfter) {
				carried = *k.RemoveAfter
			}
			ra = maxTime(ra, carried)
		}
		if k.RetiredAt != nil && k.RetiredAt.Equal(succ) && k.RemoveAfter.Equal(ra) {
			continue
		}
		k.RetiredAt, k.RemoveAfter = &succ, &ra
		if o := d.orig[k.ID]; k.ID != "" && (!equalTime(o.RetiredAt, k.RetiredAt) || !equalTime(o.RemoveAfter, k.RemoveAfter)) {
			d.note(ReasonActivate, "key %s retires at %s when the next key signs, leaves the JWKS after %s", k.ID, stamp(succ), stamp(ra))
		}
	}
}

func (d *draft) removeExpired(now time.Time) {
	d.keys = slices.DeleteFunc(d.keys, func(k Key) bool {
		if k.RemoveAfter == nil || now.Before(*k.RemoveAfter) {
			return false
		}
		d.removed = append(d.removed, k.ID)
		d.note(ReasonRemove, "key %s past remove_after %s: removed", k.ID, stamp(*k.RemoveAfter))
		return true
	})
}

func (d *draft) add(alg Algorithm, published, active time.Time) {
	d.keys = append(d.keys, Key{Algorithm: alg, PublishedAt: published, ActiveAt: active})
	slices.SortStableFunc(d.keys, byActiveAt)
}

// last returns the key with the latest ActiveAt; the draft always has one
// after bootstrap.
func (d *draft) last() Key {
	return d.keys[len(d.keys)-1]
}

func (d *draft) decision(now time.Time) Decision {
	dec := Decision{Reason: ReasonUpToDate, Message: "keyset up to date", Remove: d.removed}
	for _, k := range d.keys {
		if k.ID == "" {
			dec.Generate = append(dec.Generate, PendingKey{
				Algorithm: k.Algorithm, PublishedAt: k.PublishedAt, ActiveAt: k.ActiveAt,
				RetiredAt: k.RetiredAt, RemoveAfter: k.RemoveAfter,
			})
			continue
		}
		if o := d.orig[k.ID]; k.RetiredAt != nil && !equalTime(o.RetiredAt, k.RetiredAt) {
			dec.Retire = append(dec.Retire, Retirement{KeyID: k.ID, RetiredAt: *k.RetiredAt, RemoveAfter: *k.RemoveAfter})
		}
	}
	for _, r := range reasonOrder {
		if slices.Contains(d.reasons, r) {
			dec.Reason = r
			dec.Message = strings.Join(d.notes, "; ")
			break
		}
	}
	dec.NextDue = nextDue(d.keys, now)
	return dec
}

// nextDue is the earliest instant after now at which a key changes state
// or its presence in the JWKS.
func nextDue(keys []Key, now time.Time) time.Time {
	var due time.Time
	consider := func(t time.Time) {
		if t.After(now) && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	for _, k := range keys {
		consider(k.PublishedAt)
		consider(k.ActiveAt)
		if k.RetiredAt != nil {
			consider(*k.RetiredAt)
		}
		if k.RemoveAfter != nil {
			consider(*k.RemoveAfter)
		}
	}
	return due
}

// NextDue is the earliest instant after now at which something in ks
// changes: callers that did not just Plan use it to know when to look again.
func NextDue(ks Keyset, now time.Time) time.Time { return nextDue(ks.Keys, now) }

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
