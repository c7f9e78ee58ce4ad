// Package settings holds the server settings that may change while it runs
// (token lifetimes), read from a Kubernetes ConfigMap the operator writes
// or from a JSON file, and watched: each valid change is applied to the
// next token issued, an invalid one is logged and ignored.
//
// Both sources hold the same keys, each a Go duration string:
//
//	access-token-ttl     refresh-token-ttl     id-token-ttl
//	refresh-reuse-grace  jwks-max-age
//
// A missing key keeps the value the server was started with (its flags).
// Unknown keys are ignored, so the operator may add settings that a server
// of an older release does not know.
package settings

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/source"
)

// The keys of a settings document.
const (
	KeyAccessTokenTTL    = contract.SettingAccessTokenTTL
	KeyRefreshTokenTTL   = contract.SettingRefreshTokenTTL
	KeyIDTokenTTL        = contract.SettingIDTokenTTL
	KeyRefreshReuseGrace = contract.SettingRefreshReuseGrace
	KeyJWKSMaxAge        = contract.SettingJWKSMaxAge
)

// Kinds of settings source, as named in a spec.
const (
	KindFile       = source.KindFile
	KindKubernetes = source.KindKubernetes
)

// MaxReuseGrace bounds refresh-reuse-grace, as the --refresh-reuse-grace
// flag does.
const MaxReuseGrace = time.Minute

// Settings are the values a source may set.
type Settings struct {
	AccessTokenTTL    time.Duration
	RefreshTokenTTL   time.Duration
	IDTokenTTL        time.Duration
	RefreshReuseGrace time.Duration
	// JWKSMaxAge cannot change while the server runs (the key schedule
	// depends on it); a different value is only warned about.
	JWKSMaxAge time.Duration
}

// Validate names the first bad key.
func (s Settings) Validate() error {
	switch {
	case s.AccessTokenTTL <= 0:
		return fmt.Errorf("%s %s: must be positive", KeyAccessTokenTTL, s.AccessTokenTTL)
	case s.RefreshTokenTTL <= 0:
		return fmt.Errorf("%s %s: must be positive", KeyRefreshTokenTTL, s.RefreshTokenTTL)
	case s.RefreshTokenTTL < s.AccessTokenTTL:
		return fmt.Errorf("%s %s: must not be shorter than %s %s", KeyRefreshTokenTTL, s.RefreshTokenTTL, KeyAccessTokenTTL, s.AccessTokenTTL)
	case s.IDTokenTTL <= 0:
		return fmt.Errorf("%s %s: must be positive", KeyIDTokenTTL, s.IDTokenTTL)
	case s.RefreshReuseGrace < 0 || s.RefreshReuseGrace > MaxReuseGrace:
		return fmt.Errorf("%s %s: must be between 0s and %s", KeyRefreshReuseGrace, s.RefreshReuseGrace, MaxReuseGrace)
	case s.JWKSMaxAge < 0:
		return fmt.Errorf("%s %s: must not be negative", KeyJWKSMaxAge, s.JWKSMaxAge)
	}
	return nil
}

// Apply returns base with the values of data, a settings document, and
// validates the result. An error names the bad key.
func Apply(base Settings, data map[string]string) (Settings, error) {
	s := base
	fields := map[string]*time.Duration{
		KeyAccessTokenTTL:    &s.AccessTokenTTL,
		KeyRefreshTokenTTL:   &s.RefreshTokenTTL,
		KeyIDTokenTTL:        &s.IDTokenTTL,
		KeyRefreshReuseGrace: &s.RefreshReuseGrace,
		KeyJWKSMaxAge:        &s.JWKSMaxAge,
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first bad key is the same one every time
	for _, k := range keys {
		v, ok := data[k]
		if !ok {
			continue
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return base, fmt.Errorf("%s %q: not a duration (write it like 10m or 720h)", k, v)
		}
		*fields[k] = d
	}
	if err := s.Validate(); err != nil {
		return base, err
	}
	return s, nil
}

// Source is where settings documents come from.
type Source interface {
	// Load returns the current document.
	Load(ctx context.Context) (map[string]string, error)
	// Run calls onChange with each new document until ctx ends.
	Run(ctx context.Context, onChange func(map[string]string)) error
	// String names the source for logs.
	String() string
}

// Parse splits a settings source spec: "file:PATH" or
// "kubernetes:NAMESPACE/NAME".
func Parse(spec string) (kind, location string, err error) {
	return source.Parse("settings source", spec)
}

// Watcher keeps the settings of a running server in line with a Source.
type Watcher struct {
	src     Source
	base    Settings // the flags: what a key missing from the document means
	current Settings
	apply   func(Settings) error
	log     *slog.Logger
	warned  time.Duration // the jwks-max-age last warned about
}

// NewWatcher returns a Watcher that starts from base (the flags) and calls
// apply with each valid new Settings: base overridden by the document, so
// a key removed from the document goes back to its flag. log may be nil.
func NewWatcher(src Source, base Settings, apply func(Settings) error, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{src: src, base: base, current: base, apply: apply, log: log}
}

// Load reads and applies the source's document once. At start an invalid
// document is an error: the server should not run with settings other than
// the ones it was given.
func (w *Watcher) Load(ctx context.Context) (Settings, error) {
	data, err := w.src.Load(ctx)
	if err != nil {
		return w.current, err
	}
	s, err := Apply(w.base, data)
	if err != nil {
		return w.current, fmt.Errorf("settings from %s: %w", w.src, err)
	}
	if err := w.set(s); err != nil {
		return w.current, fmt.Errorf("settings from %s: %w", w.src, err)
	}
	return s, nil
}

// Run applies every valid change until ctx ends. An invalid document is
// logged with the bad key, and the settings in force stay.
func (w *Watcher) Run(ctx context.Context) error {
	err := w.src.Run(ctx, func(data map[string]string) {
		s, err := Apply(w.base, data)
		if err != nil {
			w.log.Error("settings invalid, keeping the previous ones", "source", w.src.String(), "error", err)
			return
		}
		if err := w.set(s); err != nil {
			w.log.Error("settings refused, keeping the previous ones", "source", w.src.String(), "error", err)
		}
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// set applies s when it differs from the settings in force.
func (w *Watcher) set(s Settings) error {
	if s == w.current {
		return nil
	}
	if s.JWKSMaxAge != w.current.JWKSMaxAge && s.JWKSMaxAge != w.warned {
		w.warned = s.JWKSMaxAge
		w.log.Warn("jwks-max-age cannot change while the server runs; restart it to apply", "source", w.src.String(),
			"jwks_max_age", s.JWKSMaxAge.String(), "jwks_max_age_in_force", w.current.JWKSMaxAge.String())
	}
	s.JWKSMaxAge = w.current.JWKSMaxAge
	if s == w.current {
		return nil
	}
	if err := w.apply(s); err != nil {
		return err
	}
	w.current = s
	w.log.Info("settings applied", "source", w.src.String(),
		"access_token_ttl", s.AccessTokenTTL.String(), "refresh_token_ttl", s.RefreshTokenTTL.String(),
		"id_token_ttl", s.IDTokenTTL.String(), "refresh_reuse_grace", s.RefreshReuseGrace.String())
	return nil
}
