package keysource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/ideapool/ideapool/internal/atomicfile"
	"github.com/ideapool/ideapool/internal/keyset"
)

// DefaultPollInterval is how often Run looks at the file and the schedule.
const DefaultPollInterval = time.Second

// File keeps the keyset in a JSON file (mode 0600, directory 0700). Several
// processes may share the file: writes are atomic renames, and advancing
// happens under an exclusive flock on PATH.lock after re-reading the file,
// so only one of them rotates.
type File struct {
	path   string
	policy keyset.Policy
	gen    keyset.Generator
	now    func() time.Time
	log    *slog.Logger

	// PollInterval is how often Run checks the file for changes and the
	// keyset for due work. Default DefaultPollInterval; set before Run.
	PollInterval time.Duration

	mu      sync.Mutex
	current keyset.Keyset
	loaded  bool
	raw     []byte   // bytes current was read from or written as
	stat    fileStat // of the file when raw was read or written
	lastErr string   // last error logged by Run, to log each one once
}

// fileStat identifies one version of the file: an atomic rename changes the
// inode, an in-place edit the size or mtime.
type fileStat struct {
	mtime time.Time
	size  int64
	ino   uint64
	ok    bool
}

// NewFile returns a File source for path. gen creates keys, now is the
// clock; log may be nil.
func NewFile(path string, policy keyset.Policy, gen keyset.Generator, now func() time.Time, log *slog.Logger) *File {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &File{path: path, policy: policy, gen: gen, now: now, log: log, PollInterval: DefaultPollInterval}
}

// Path returns the keyset file's path.
func (f *File) Path() string { return f.path }

// Keyset returns the last keyset loaded, written or picked up by Run.
func (f *File) Keyset() keyset.Keyset {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

// Load returns the keyset, creating the file with a new keyset when it is
// missing and applying any rotation that is due. A file that exists but is
// unreadable or invalid is an error; it is never overwritten.
func (f *File) Load(ctx context.Context) (keyset.Keyset, error) {
	if err := f.policy.Validate(); err != nil {
		return keyset.Keyset{}, err
	}
	raw, st, err := f.read()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Created under the lock below.
	case err != nil:
		return keyset.Keyset{}, err
	default:
		ks, err := keyset.Parse(raw)
		if err != nil {
			return keyset.Keyset{}, fmt.Errorf("load keyset %s: %w", f.path, err)
		}
		if keyset.Plan(ks, f.policy, f.now()).UpToDate() {
			f.set(ks, raw, st)
			return ks, nil
		}
	}
	ks, _, err := f.advance(ctx, nil)
	if err != nil {
		return keyset.Keyset{}, err
	}
	return ks, nil
}

// Run keeps the keyset current until ctx ends: every PollInterval it
// reloads the file if it changed on disk and advances the keyset when
// something is due, calling onChange with every new keyset. If Load was not
// called first, Run loads and calls onChange with the initial keyset. When
// the file becomes unreadable or invalid, the last good keyset stays in
// use and the error is logged.
func (f *File) Run(ctx context.Context, onChange func(keyset.Keyset)) error {
	f.mu.Lock()
	loaded := f.loaded
	f.mu.Unlock()
	if !loaded {
		ks, err := f.Load(ctx)
		if err != nil {
			return err
		}
		onChange(ks)
	}
	interval := f.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if ks, changed := f.poll(ctx); changed {
			onChange(ks)
		}
	}
}

// poll reloads a changed file and advances a due keyset.
func (f *File) poll(ctx context.Context) (keyset.Keyset, bool) {
	changed := false
	if ks, ok, err := f.reloadIfChanged(); err != nil {
		f.logError("keyset file unreadable, keeping the last good keyset", err)
	} else if ok {
		changed = true
		f.log.Info("keyset reloaded from file", "path", f.path, "keys", len(ks.Keys))
	}
	cur := f.Keyset()
	if !keyset.Plan(cur, f.policy, f.now()).UpToDate() {
		_, ok, err := f.advance(ctx, &cur)
		if err != nil {
			f.logError("keyset rotation failed, keeping the last good keyset", err)
		} else if ok {
			changed = true
		}
	}
	if changed {
		f.mu.Lock()
		f.lastErr = ""
		f.mu.Unlock()
	}
	return f.Keyset(), changed
}

func (f *File) reloadIfChanged() (keyset.Keyset, bool, error) {
	st := statFile(f.path)
	f.mu.Lock()
	same := st.equal(f.stat)
	f.mu.Unlock()
	if same {
		return keyset.Keyset{}, false, nil
	}
	raw, st, err := f.read()
	if err != nil {
		f.mu.Lock()
		f.stat = st // log once per version of the file
		f.mu.Unlock()
		return keyset.Keyset{}, false, err
	}
	ks, err := keyset.Parse(raw)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.stat = st
		return keyset.Keyset{}, false, fmt.Errorf("parse %s: %w", f.path, err)
	}
	f.stat = st
	if bytes.Equal(raw, f.raw) {
		return keyset.Keyset{}, false, nil
	}
	f.current, f.raw, f.loaded = ks, raw, true
	return ks, true, nil
}

// advance applies keyset.Advance under the file lock, on a fresh read of
// the file so that concurrent processes rotate only once. When the file
// is missing it starts from fallback (Run's last good keyset) or, at first
// start, from an empty keyset. It reports whether the keyset changed.
func (f *File) advance(ctx context.Context, fallback *keyset.Keyset) (keyset.Keyset, bool, error) {
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return keyset.Keyset{}, false, fmt.Errorf("create keyset directory: %w", err)
	}
	unlock, err := atomicfile.Lock(ctx, f.path+".lock")
	if err != nil {
		return keyset.Keyset{}, false, err
	}
	defer unlock()

	var ks keyset.Keyset
	raw, st, err := f.read()
	switch {
	case errors.Is(err, fs.ErrNotExist) && fallback != nil:
		f.log.Warn("keyset file missing, rewriting it from memory", "path", f.path)
		ks = *fallback
	case errors.Is(err, fs.ErrNotExist):
		f.log.Info("keyset file missing, creating it", "path", f.path)
	case err != nil:
		return keyset.Keyset{}, false, err
	default:
		if ks, err = keyset.Parse(raw); err != nil {
			return keyset.Keyset{}, false, fmt.Errorf("load keyset %s: %w", f.path, err)
		}
	}
	// Keys first, then the time they are published at: a key made on a
	// loaded machine must not count seconds of publication nobody saw.
	gen, err := keyset.Pregenerate(f.gen, keyset.Plan(ks, f.policy, f.now()).Generate, f.policy.RSABits)
	if err != nil {
		return keyset.Keyset{}, false, fmt.Errorf("advance keyset %s: %w", f.path, err)
	}
	now := f.now()
	next, changes, err := keyset.Advance(ks, f.policy, now, gen)
	if err != nil {
		return keyset.Keyset{}, false, fmt.Errorf("advance keyset %s: %w", f.path, err)
	}
	if len(changes) == 0 && raw != nil {
		// Another process advanced it already.
		changed := f.set(ks, raw, st)
		return ks, changed, nil
	}
	data, err := keyset.Marshal(next)
	if err != nil {
		return keyset.Keyset{}, false, err
	}
	if err := atomicfile.Write(f.path, data, 0o600); err != nil {
		return keyset.Keyset{}, false, fmt.Errorf("write keyset %s: %w", f.path, err)
	}
	f.logChanges(next, changes, now)
	f.set(next, data, statFile(f.path))
	return next, true, nil
}

// set makes ks current and reports whether it differs from the previous.
func (f *File) set(ks keyset.Keyset, raw []byte, st fileStat) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := !f.loaded || !bytes.Equal(raw, f.raw)
	f.current, f.raw, f.stat, f.loaded = ks, raw, st, true
	return changed
}

func (f *File) read() ([]byte, fileStat, error) {
	st := statFile(f.path)
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return nil, st, fmt.Errorf("read keyset: %w", err)
	}
	return raw, st, nil
}

func (s fileStat) equal(o fileStat) bool {
	return s.ok == o.ok && s.size == o.size && s.ino == o.ino && s.mtime.Equal(o.mtime)
}

func statFile(path string) fileStat {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}
	}
	st := fileStat{mtime: fi.ModTime(), size: fi.Size(), ok: true}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

func (f *File) logError(msg string, err error) {
	f.mu.Lock()
	repeat := f.lastErr == err.Error()
	f.lastErr = err.Error()
	f.mu.Unlock()
	if !repeat {
		f.log.Error(msg, "path", f.path, "error", err)
	}
}

// logChanges logs what this process wrote: an audit line (audit, event,
// kid) for each key generated, retired (its retirement set: retired_at is
// when it stops signing), removed or revoked. When a key starts signing is
// reported by SigningWatch when it happens, not when it is scheduled.
func (f *File) logChanges(ks keyset.Keyset, changes []keyset.Change, now time.Time) {
	for _, c := range changes {
		switch c.Kind {
		case keyset.Generated:
			f.audit(slog.LevelInfo, "signing key generated", c, "active_at", c.At)
		case keyset.Activated:
			f.log.Info("signing key activation scheduled", "kid", c.KeyID, "active_at", c.At)
		case keyset.Retired:
			f.audit(slog.LevelInfo, "signing key retirement scheduled", c, "retired_at", c.At)
		case keyset.Removed:
			f.audit(slog.LevelInfo, "signing key removed", c)
		case keyset.Revoked:
			f.audit(slog.LevelWarn, "signing key revoked", c)
		}
	}
	attrs := []any{"path", f.path, "keys", len(ks.Keys), "next_due", keyset.NextDue(ks, now)}
	if next, ok := nextRotation(ks, now); ok {
		attrs = append(attrs, "next_rotation", next)
	}
	f.log.Info("keyset written", attrs...)
}

// audit writes the audit line of one change; it never holds key material.
func (f *File) audit(level slog.Level, msg string, c keyset.Change, attrs ...any) {
	f.log.Log(context.Background(), level, msg,
		append([]any{"audit", true, "event", c.Kind.AuditEvent(), "actor_id", AuditActor, "subject_id", c.KeyID,
			"kid", c.KeyID, "path", f.path}, attrs...)...)
}

// nextRotation is when the next scheduled key starts signing.
func nextRotation(ks keyset.Keyset, now time.Time) (time.Time, bool) {
	var at time.Time
	for _, k := range ks.Keys {
		if k.ActiveAt.After(now) && (at.IsZero() || k.ActiveAt.Before(at)) {
			at = k.ActiveAt
		}
	}
	return at, !at.IsZero()
}
