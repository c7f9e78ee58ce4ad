package keysource_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/clocktest"
	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/keysource"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

var policy = keyset.Policy{
	Algorithm:        keyset.ES256,
	RotationInterval: 10 * time.Hour,
	PublishAhead:     time.Hour,
	MaxTokenTTL:      time.Hour,
}

// clock is a settable fake clock.
type clock = clocktest.Clock

func newClock() *clock { return clocktest.New(t0) }

// countingGen is a deterministic generator that counts the keys it makes.
type countingGen struct {
	mu  sync.Mutex
	gen keyset.Generator
	n   int
}

func newGen(seed byte) *countingGen {
	return &countingGen{gen: keyset.NewGenerator(mrand.NewChaCha8([32]byte{seed}))}
}

func (g *countingGen) Generate(alg keyset.Algorithm, bits int) (crypto.Signer, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return g.gen.Generate(alg, bits)
}

func (g *countingGen) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// syncBuffer collects JSON log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFile(t *testing.T, path string, clk *clock, gen keyset.Generator) (*keysource.File, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	f := keysource.NewFile(path, policy, gen, clk.Now, slog.New(slog.NewJSONHandler(logs, nil)))
	f.PollInterval = 20 * time.Millisecond
	return f, logs
}

func kids(ks keyset.Keyset) string {
	var out []string
	for _, k := range ks.Keys {
		out = append(out, k.ID)
	}
	return strings.Join(out, ",")
}

func TestParse(t *testing.T) {
	cases := map[string]struct {
		spec         string
		wantKind     string
		wantLocation string
		wantErr      error  // checked with errors.Is when set
		wantErrText  string // substring when set
	}{
		"file":                  {spec: "file:/var/lib/ideapool/keys.json", wantKind: "file", wantLocation: "/var/lib/ideapool/keys.json"},
		"relative file":         {spec: "file:keys.json", wantKind: "file", wantLocation: "keys.json"},
		"file with colon":       {spec: "file:/a:b", wantKind: "file", wantLocation: "/a:b"},
		"kubernetes":            {spec: "kubernetes:ideapool/signing-keys", wantKind: "kubernetes", wantLocation: "ideapool/signing-keys"},
		"kubernetes without ns": {spec: "kubernetes:signing-keys", wantErrText: "NAMESPACE/NAME"},
		"empty file path":       {spec: "file:", wantErrText: "empty path"},
		"no kind":               {spec: "/etc/keys.json", wantErrText: "want file:PATH"},
		"unknown kind":          {spec: "vault:secret/keys", wantErrText: "unknown kind"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kind, loc, err := keysource.Parse(tc.spec)
			if kind != tc.wantKind || loc != tc.wantLocation {
				t.Errorf("Parse = %q, %q; want %q, %q", kind, loc, tc.wantKind, tc.wantLocation)
			}
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("err = %v, want %v", err, tc.wantErr)
				}
			case tc.wantErrText != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErrText) {
					t.Errorf("err = %v, want it to mention %q", err, tc.wantErrText)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestLoadCreatesFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "keys.json")
	clk := newClock()
	f, logs := newFile(t, path, clk, newGen(1))
	ks, err := f.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keyset.Signing(ks, clk.Now()); !ok || len(ks.Keys) != 2 {
		t.Fatalf("bootstrap keyset: %d keys, signing %v", len(ks.Keys), ok)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
	before, _ := os.ReadFile(path)

	// A second source (another process) reads the same keys and does not
	// rewrite the file.
	g2 := newGen(2)
	f2, _ := newFile(t, path, clk, g2)
	ks2, err := f2.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if kids(ks2) != kids(ks) || g2.count() != 0 {
		t.Errorf("second Load: %s (generated %d), want %s", kids(ks2), g2.count(), kids(ks))
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("second Load rewrote the file")
	}

	// Logs name keys by kid and never contain key material.
	out := logs.String()
	if !strings.Contains(out, `"msg":"signing key generated"`) || !strings.Contains(out, `"kid":"`+ks.Keys[0].ID+`"`) {
		t.Errorf("logs lack key generation:\n%s", out)
	}
	for _, k := range ks.Keys {
		var jwk map[string]any
		_ = json.Unmarshal(k.Private, &jwk)
		if d, _ := jwk["d"].(string); d == "" || strings.Contains(out, d) {
			t.Fatal("private key material in logs")
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".keys.json.tmp-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestLoadRotatesWhenDue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	clk := newClock()
	f, logs := newFile(t, path, clk, newGen(3))
	ks, err := f.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(policy.RotationInterval)
	ks2, err := f.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ks2.Keys) != 3 || !strings.HasPrefix(kids(ks2), kids(ks)) {
		t.Fatalf("after one interval: %s, want %s plus a new key", kids(ks2), kids(ks))
	}
	if s, _ := keyset.Signing(ks2, clk.Now()); s.ID != ks.Keys[1].ID {
		t.Errorf("signing %s, want the pre-published key %s", s.ID, ks.Keys[1].ID)
	}
	onDisk, _ := os.ReadFile(path)
	stored, err := keyset.Parse(onDisk)
	if err != nil || kids(stored) != kids(ks2) {
		t.Errorf("file holds %s (%v), want %s", kids(stored), err, kids(ks2))
	}
	if !strings.Contains(logs.String(), `"next_rotation"`) {
		t.Errorf("no next_rotation logged:\n%s", logs)
	}
}

func TestLoadRefusesCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := newFile(t, path, newClock(), newGen(4))
	if _, err := f.Load(context.Background()); !errors.Is(err, keyset.ErrInvalid) {
		t.Fatalf("Load of a corrupt file = %v, want ErrInvalid", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "{not json" {
		t.Error("corrupt file was overwritten")
	}
}

func TestConcurrentLoadRotatesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	clk := newClock()
	boot, _ := newFile(t, path, clk, newGen(5))
	if _, err := boot.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(policy.RotationInterval)
	var wg sync.WaitGroup
	var gens []*countingGen
	results := make([]string, 4)
	for i := range results {
		g := newGen(byte(10 + i))
		gens = append(gens, g)
		f, _ := newFile(t, path, clk, g)
		wg.Go(func() {
			ks, err := f.Load(context.Background())
			if err != nil {
				t.Error(err)
			}
			results[i] = kids(ks)
		})
	}
	wg.Wait()
	total := 0
	for _, g := range gens {
		total += g.count()
	}
	if total != 1 {
		t.Errorf("%d keys generated by 4 concurrent processes, want 1", total)
	}
	for _, r := range results[1:] {
		if r != results[0] {
			t.Errorf("processes disagree: %s vs %s", r, results[0])
		}
	}
}

// run starts f.Run and returns a channel of the keysets it reports.
func run(t *testing.T, f *keysource.File) <-chan keyset.Keyset {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan keyset.Keyset, 16)
	done := make(chan error)
	go func() { done <- f.Run(ctx, func(ks keyset.Keyset) { ch <- ks }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ch
}

func wait(t *testing.T, ch <-chan keyset.Keyset) keyset.Keyset {
	t.Helper()
	select {
	case ks := <-ch:
		return ks
	case <-time.After(5 * time.Second):
		t.Fatal("no keyset reported within 5s")
		return keyset.Keyset{}
	}
}

func TestRunRotatesWhenDue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	clk := newClock()
	f, logs := newFile(t, path, clk, newGen(6))
	ch := run(t, f)
	first := wait(t, ch) // Run without Load reports the initial keyset
	clk.Advance(policy.RotationInterval)
	got := wait(t, ch)
	if len(got.Keys) != 3 || !strings.HasPrefix(kids(got), kids(first)) {
		t.Fatalf("after rotation: %s, from %s", kids(got), kids(first))
	}
	stored, _ := os.ReadFile(path)
	if ks, err := keyset.Parse(stored); err != nil || kids(ks) != kids(got) {
		t.Errorf("file holds %s (%v)", kids(ks), err)
	}
	// The rotation written is audited: the new key generated, the key
	// that signs now given its retirement.
	lines := auditLines(t, logs.String())
	newest := got.Keys[2].ID
	if !hasAudit(lines, "key_generated", newest) || !hasAudit(lines, "key_retired", got.Keys[1].ID) {
		t.Errorf("rotation to %s not audited:\n%s", newest, logs)
	}
}

func TestRunPicksUpExternalChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	clk := newClock()
	f, _ := newFile(t, path, clk, newGen(7))
	ks, err := f.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ch := run(t, f)

	// Another process revokes the signing key and writes the file.
	revoked, _, err := keyset.Revoke(ks, ks.Keys[0].ID, policy, clk.Now(), newGen(8))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := keyset.Marshal(revoked)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got := wait(t, ch)
	if kids(got) != kids(revoked) {
		t.Fatalf("picked up %s, want %s", kids(got), kids(revoked))
	}
	if kids(f.Keyset()) != kids(revoked) {
		t.Error("Keyset() not updated")
	}
}

func TestRunKeepsLastGoodKeyset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	clk := newClock()
	f, logs := newFile(t, path, clk, newGen(9))
	good, err := f.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ch := run(t, f)
	if err := os.WriteFile(path, []byte(`{"keys":[{"kid":"x"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(logs.String(), `"level":"ERROR"`) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 1 {
		t.Fatalf("%d errors logged, want 1:\n%s", n, logs)
	}
	select {
	case ks := <-ch:
		t.Fatalf("corrupt file reported as keyset %s", kids(ks))
	case <-time.After(100 * time.Millisecond):
	}
	if kids(f.Keyset()) != kids(good) {
		t.Error("last good keyset not kept")
	}
	// Rotation while the file is bad does not overwrite it.
	clk.Advance(policy.RotationInterval)
	time.Sleep(100 * time.Millisecond)
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"kid":"x"`) {
		t.Error("corrupt file overwritten")
	}
	// Repairing the file is picked up (and the due rotation applied).
	data, _ := keyset.Marshal(good)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got := wait(t, ch)
	if !strings.HasPrefix(kids(got), kids(good)) {
		t.Errorf("after repair: %s", kids(got))
	}
}

// slowGen takes d of the clock to make each key, like RSA on a loaded
// machine.
type slowGen struct {
	clk *clock
	d   time.Duration
	gen keyset.Generator
}

func (g slowGen) Generate(alg keyset.Algorithm, bits int) (crypto.Signer, error) {
	g.clk.Advance(g.d)
	return g.gen.Generate(alg, bits)
}

// TestSlowKeyGeneration: a key counts as published from when the keyset
// holding it is written, not from when its generation started; otherwise a
// verifier that fetched the JWKS during a slow generation would miss a key
// that signs publishAhead after the earlier time.
func TestSlowKeyGeneration(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "keys.json")
	gen := slowGen{clk: clk, d: 10 * time.Minute, gen: newGen(7)}
	check := func(step string, before keyset.Keyset) keyset.Keyset {
		t.Helper()
		f, _ := newFile(t, path, clk, gen)
		ks, err := f.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		written := clk.Now()
		fresh := 0
		for _, k := range ks.Keys {
			if strings.Contains(kids(before), k.ID) {
				continue
			}
			fresh++
			if k.PublishedAt.Before(written) {
				t.Errorf("%s: key %s published at %s, before the keyset holding it was written at %s",
					step, k.ID, k.PublishedAt.Format(time.TimeOnly), written.Format(time.TimeOnly))
			}
		}
		if fresh == 0 {
			t.Fatalf("%s: no key was generated", step)
		}
		return ks
	}
	ks := check("first start", keyset.Keyset{})
	for keyset.Plan(ks, policy, clk.Now()).UpToDate() {
		due := keyset.NextDue(ks, clk.Now())
		if due.IsZero() {
			t.Fatal("the keyset never needs a new key")
		}
		clk.Set(due)
	}
	check("scheduled rotation", ks)
}
