package accounts

import (
	"testing"
	"time"
)

func TestDecideRefresh(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	// live is a current token of a live session, rotating, 5 s of grace.
	live := refreshFacts{now: now, rotate: RotateRefreshToken, grace: 5 * time.Second, sessionExpires: now.Add(time.Hour)}
	with := func(edit func(f *refreshFacts)) refreshFacts { f := live; edit(&f); return f }
	tests := map[string]struct {
		facts refreshFacts
		want  refreshAction
	}{
		"current token, rotating dialect": {facts: live, want: refreshRotate},
		"current token, keeping dialect":  {facts: with(func(f *refreshFacts) { f.rotate = KeepRefreshToken }), want: refreshKeep},
		"revoked session":                 {facts: with(func(f *refreshFacts) { f.sessionRevoked = true }), want: refreshInvalid},
		"session expires now":             {facts: with(func(f *refreshFacts) { f.sessionExpires = now }), want: refreshExpired},
		"disabled account":                {facts: with(func(f *refreshFacts) { f.userDisabled = true }), want: refreshInvalid},
		// A revoked session wins over everything else: a reused token of
		// it is refused, not counted as reuse again.
		"revoked and rotated out": {facts: with(func(f *refreshFacts) {
			f.sessionRevoked, f.rotatedAt, f.successorIsOwn = true, ago(time.Hour), false
		}), want: refreshInvalid},
		"expired and rotated out": {facts: with(func(f *refreshFacts) {
			f.sessionExpires, f.rotatedAt = now.Add(-time.Second), ago(time.Hour)
		}), want: refreshExpired},
		"retry within the grace": {facts: with(func(f *refreshFacts) {
			f.rotatedAt, f.successorIsOwn = ago(5*time.Second), true
		}), want: refreshReplay},
		"retry within the grace at a keeping dialect": {facts: with(func(f *refreshFacts) {
			f.rotatedAt, f.successorIsOwn, f.rotate = ago(time.Second), true, KeepRefreshToken
		}), want: refreshStale},
		"retry just after the grace": {facts: with(func(f *refreshFacts) {
			f.rotatedAt, f.successorIsOwn = ago(5*time.Second+time.Nanosecond), true
		}), want: refreshReuse},
		"within the grace, but the successor rotated on": {facts: with(func(f *refreshFacts) {
			f.rotatedAt, f.successorIsOwn = ago(time.Second), false
		}), want: refreshReuse},
		"grace disabled": {facts: with(func(f *refreshFacts) {
			f.rotatedAt, f.successorIsOwn, f.grace = ago(0), true, 0
		}), want: refreshReuse},
		"an old token at a keeping dialect": {facts: with(func(f *refreshFacts) {
			f.rotatedAt, f.rotate = ago(time.Hour), KeepRefreshToken
		}), want: refreshReuse},
		"disabled account presenting a rotated-out token": {facts: with(func(f *refreshFacts) {
			f.userDisabled, f.rotatedAt = true, ago(time.Hour)
		}), want: refreshInvalid},
		// A token of the session whose row is gone was rotated out and
		// replaced again: reuse, however old it is.
		"a token of the session whose row is gone": {facts: with(func(f *refreshFacts) { f.forgotten = true }), want: refreshReuse},
		"whose row is gone, at a keeping dialect": {facts: with(func(f *refreshFacts) {
			f.forgotten, f.rotate = true, KeepRefreshToken
		}), want: refreshReuse},
		"whose row is gone, of a revoked session": {facts: with(func(f *refreshFacts) {
			f.forgotten, f.sessionRevoked = true, true
		}), want: refreshInvalid},
		"whose row is gone, of an expired session": {facts: with(func(f *refreshFacts) {
			f.forgotten, f.sessionExpires = true, now
		}), want: refreshExpired},
		"whose row is gone, of a disabled account": {facts: with(func(f *refreshFacts) {
			f.forgotten, f.userDisabled = true, true
		}), want: refreshInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := decideRefresh(tc.facts); got != tc.want {
				t.Fatalf("decideRefresh = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestThrottleAddr(t *testing.T) {
	tests := map[string]struct {
		addr, want string
	}{
		"IPv4 whole":                           {addr: "192.0.2.7", want: "192.0.2.7"},
		"IPv4-mapped IPv6 is the IPv4":         {addr: "::ffff:192.0.2.7", want: "192.0.2.7"},
		"IPv6 by its /64":                      {addr: "2001:db8:1:2:aaaa:bbbb:cccc:dddd", want: "2001:db8:1:2::/64"},
		"another host of the same /64":         {addr: "2001:db8:1:2::1", want: "2001:db8:1:2::/64"},
		"the next /64":                         {addr: "2001:db8:1:3::1", want: "2001:db8:1:3::/64"},
		"a zone is no part of it":              {addr: "fe80::1%eth0", want: "fe80::/64"},
		"loopback":                             {addr: "::1", want: "::/64"},
		"not an address counts as it is":       {addr: "pipe", want: "pipe"},
		"an address with a port is no address": {addr: "192.0.2.7:80", want: "192.0.2.7:80"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := throttleAddr(tc.addr); got != tc.want {
				t.Fatalf("throttleAddr(%q) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
}
