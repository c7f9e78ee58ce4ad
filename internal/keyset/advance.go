package keyset

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ChangeKind names what happened to a key in one Advance, RequestRotation
// or Revoke.
type ChangeKind string

const (
	// Generated: a new key was created and published.
	Generated ChangeKind = "Generated"
	// Activated: a key signs from At (set now, or moved earlier).
	Activated ChangeKind = "Activated"
	// Retired: a key stops signing at At (possibly in the future).
	Retired ChangeKind = "Retired"
	// Removed: a key left the keyset and the JWKS.
	Removed ChangeKind = "Removed"
	// Revoked: a key was removed at once, before its time.
	Revoked ChangeKind = "Revoked"
)

// AuditEvent is the event name of the audit log line for a change of this
// kind: key_generated, key_activated, key_retired, key_removed or
// key_revoked.
func (k ChangeKind) AuditEvent() string { return "key_" + strings.ToLower(string(k)) }

// Change records one thing that happened to one key, for logs.
type Change struct {
	Kind  ChangeKind
	KeyID string
	// At is when the change takes effect: ActiveAt for Generated and
	// Activated, RetiredAt for Retired, now for Removed and Revoked.
	At time.Time
}

// Advance applies Plan: it returns the keyset as it should be at now,
// generating keys with gen, and what changed. When nothing is due it
// returns ks unchanged and no changes.
func Advance(ks Keyset, p Policy, now time.Time, gen Generator) (Keyset, []Change, error) {
	if err := p.Validate(); err != nil {
		return ks, nil, err
	}
	d := newDraft(ks)
	d.plan(p.WithDefaults(), now)
	return d.apply(p.WithDefaults(), now, gen)
}

// RequestRotation makes the next key sign as soon as it is safe: once it
// has been published for JWKSMaxAge+ClockSkew (ActiveAt = max(now,
// PublishedAt+JWKSMaxAge+ClockSkew)). The current key retires at that moment
// and a new next key is scheduled. Requesting again before the next key
// signs changes nothing.
func RequestRotation(ks Keyset, p Policy, now time.Time, gen Generator) (Keyset, []Change, error) {
	if err := p.Validate(); err != nil {
		return ks, nil, err
	}
	p = p.WithDefaults()
	d := newDraft(ks)
	d.plan(p, now)
	cur := signingIndex(d.keys, now)
	next := cur + 1 // keys are sorted; plan guarantees a key after the signing one
	if cur < 0 || next >= len(d.keys) {
		return ks, nil, errors.New("request rotation: no current and next key after planning")
	}
	at := maxTime(now, d.keys[next].PublishedAt.Add(p.propagation()))
	if !at.After(d.keys[cur].ActiveAt) {
		// Two keys must not share an ActiveAt; the current one started at
		// this very instant.
		at = d.keys[cur].ActiveAt.Add(time.Second)
	}
	if at.Before(d.keys[next].ActiveAt) {
		d.keys[next].ActiveAt = at
		d.note(ReasonRotationRequested, "rotation requested: next key signs from %s", stamp(at))
		if next == len(d.keys)-1 {
			na := maxTime(at.Add(p.RotationInterval), now.Add(p.PublishAhead))
			d.add(p.Algorithm, now, na)
			d.note(ReasonSchedule, "new next key published now, signing from %s", stamp(na))
		}
		d.normalize(p, now)
	}
	return d.apply(p, now, gen)
}

// Revoke removes the key kid at once. If it was signing, a fresh key (not
// the pre-published next key, which keeps its schedule) signs immediately;
// verifiers that cached the JWKS will refuse its tokens until they refresh,
// which is the price of revocation. Revoking a key that never signed or
// has retired only removes it (and schedules a new next key if needed).
func Revoke(ks Keyset, kid string, p Policy, now time.Time, gen Generator) (Keyset, []Change, error) {
	if err := p.Validate(); err != nil {
		return ks, nil, err
	}
	p = p.WithDefaults()
	d := newDraft(ks)
	i := slices.IndexFunc(d.keys, func(k Key) bool { return k.ID == kid })
	if i < 0 {
		return ks, nil, fmt.Errorf("revoke %q: %w", kid, ErrUnknownKey)
	}
	wasSigning := signingIndex(d.keys, now) == i
	d.keys = slices.Delete(d.keys, i, i+1)
	d.revoked = kid
	d.note(ReasonRevoked, "key %s revoked", kid)
	if wasSigning {
		d.add(p.Algorithm, now, now)
		d.note(ReasonRevoked, "fresh key active immediately")
	}
	d.plan(p, now)
	return d.apply(p, now, gen)
}

// apply generates the pending keys, validates the result and lists changes.
func (d *draft) apply(p Policy, now time.Time, gen Generator) (Keyset, []Change, error) {
	var changes []Change
	if d.revoked != "" {
		changes = append(changes, Change{Kind: Revoked, KeyID: d.revoked, At: now})
	}
	for _, kid := range d.removed {
		changes = append(changes, Change{Kind: Removed, KeyID: kid, At: now})
	}
	out := Keyset{Keys: make([]Key, 0, len(d.keys))}
	for _, k := range d.keys {
		o, existed := d.orig[k.ID]
		if k.ID == "" {
			if gen == nil {
				return Keyset{}, nil, errors.New("advance keyset: a key must be generated but no generator was given")
			}
			signer, err := gen.Generate(k.Algorithm, p.RSABits)
			if err != nil {
				return Keyset{}, nil, fmt.Errorf("advance keyset: generate %s key: %w", k.Algorithm, err)
			}
			nk, err := NewKey(signer, k.Algorithm, now, k.PublishedAt, k.ActiveAt)
			if err != nil {
				return Keyset{}, nil, fmt.Errorf("advance keyset: %w", err)
			}
			nk.RetiredAt, nk.RemoveAfter = k.RetiredAt, k.RemoveAfter
			k = nk
			changes = append(changes, Change{Kind: Generated, KeyID: k.ID, At: k.ActiveAt})
			if !k.ActiveAt.After(now) {
				changes = append(changes, Change{Kind: Activated, KeyID: k.ID, At: k.ActiveAt})
			}
		} else if existed && !o.ActiveAt.Equal(k.ActiveAt) {
			changes = append(changes, Change{Kind: Activated, KeyID: k.ID, At: k.ActiveAt})
		}
		if k.RetiredAt != nil && (!existed || !equalTime(o.RetiredAt, k.RetiredAt)) {
			changes = append(changes, Change{Kind: Retired, KeyID: k.ID, At: *k.RetiredAt})
		}
		out.Keys = append(out.Keys, k)
	}
	if len(changes) == 0 {
		return Keyset{Keys: slices.Clone(out.Keys)}, nil, nil
	}
	if err := out.validateSchedule(); err != nil {
		return Keyset{}, nil, fmt.Errorf("advance keyset: %w", err)
	}
	return out, changes, nil
}

// validateSchedule checks what Validate checks except the key material,
// which NewKey or Parse already checked.
func (ks Keyset) validateSchedule() error {
	if len(ks.Keys) > maxKeys {
		return fmt.Errorf("%w: more than %d keys", ErrInvalid, maxKeys)
	}
	seenID := make(map[string]bool, len(ks.Keys))
	seenActive := make(map[int64]bool, len(ks.Keys))
	for i, k := range ks.Keys {
		if !k.Algorithm.Valid() {
			return fmt.Errorf("%w: key %d: unsupported alg %q", ErrInvalid, i, k.Algorithm)
		}
		if err := k.validateTimes(); err != nil {
			return fmt.Errorf("%w: key %d: %w", ErrInvalid, i, err)
		}
		if seenID[k.ID] {
			return fmt.Errorf("%w: key %d: duplicate kid %q", ErrInvalid, i, k.ID)
		}
		seenID[k.ID] = true
		if seenActive[k.ActiveAt.UnixNano()] {
			return fmt.Errorf("%w: key %d: another key has the same active_at", ErrInvalid, i)
		}
		seenActive[k.ActiveAt.UnixNano()] = true
	}
	return nil
}
