package settings_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ideapool/ideapool/internal/kubeclient/kubetest"
	"github.com/ideapool/ideapool/internal/settings"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.Stop()
	os.Exit(code)
}

// flags are the settings a server starts with.
var flags = settings.Settings{
	AccessTokenTTL:    10 * time.Minute,
	RefreshTokenTTL:   720 * time.Hour,
	IDTokenTTL:        time.Hour,
	RefreshReuseGrace: 5 * time.Second,
	JWKSMaxAge:        5 * time.Minute,
}

func TestApply(t *testing.T) {
	cases := map[string]struct {
		data    map[string]string
		want    settings.Settings // when wantErr is empty
		wantErr string            // substring naming the bad key
	}{
		"empty keeps the flags": {data: nil, want: flags},
		"every key": {
			data: map[string]string{"access-token-ttl": "1m", "refresh-token-ttl": "24h", "id-token-ttl": "30m",
				"refresh-reuse-grace": "0s", "jwks-max-age": "2s"},
			want: settings.Settings{AccessTokenTTL: time.Minute, RefreshTokenTTL: 24 * time.Hour,
				IDTokenTTL: 30 * time.Minute, RefreshReuseGrace: 0, JWKSMaxAge: 2 * time.Second},
		},
		"one key, the rest from the flags": {
			data: map[string]string{"access-token-ttl": " 2m "},
			want: func() settings.Settings { s := flags; s.AccessTokenTTL = 2 * time.Minute; return s }(),
		},
		"unknown keys ignored": {data: map[string]string{"log-level": "debug"}, want: flags},
		// Each bad value is named by its key.
		"not a duration":          {data: map[string]string{"id-token-ttl": "an hour"}, wantErr: `id-token-ttl "an hour": not a duration`},
		"zero access":             {data: map[string]string{"access-token-ttl": "0s"}, wantErr: "access-token-ttl 0s: must be positive"},
		"negative refresh":        {data: map[string]string{"refresh-token-ttl": "-1h"}, wantErr: "refresh-token-ttl -1h0m0s: must be positive"},
		"refresh shorter":         {data: map[string]string{"refresh-token-ttl": "5m"}, wantErr: "refresh-token-ttl 5m0s: must not be shorter than access-token-ttl"},
		"grace over a minute":     {data: map[string]string{"refresh-reuse-grace": "2m"}, wantErr: "refresh-reuse-grace 2m0s: must be between"},
		"negative jwks max age":   {data: map[string]string{"jwks-max-age": "-1s"}, wantErr: "jwks-max-age -1s: must not be negative"},
		"number, not a duration":  {data: map[string]string{"access-token-ttl": "600"}, wantErr: `access-token-ttl "600": not a duration`},
		"bad key among good ones": {data: map[string]string{"access-token-ttl": "1m", "id-token-ttl": "x"}, wantErr: "id-token-ttl"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := settings.Apply(flags, tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Apply error = %v, want %q", err, tc.wantErr)
				}
				if got != flags {
					t.Errorf("on error Apply returned %+v, want the base unchanged", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Apply = %+v\nwant    %+v", got, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	cases := map[string]struct {
		spec, wantKind, wantLocation, wantErr string
	}{
		"file":          {spec: "file:/etc/ideapool/settings.json", wantKind: "file", wantLocation: "/etc/ideapool/settings.json"},
		"configmap":     {spec: "kubernetes:apps/pool-config", wantKind: "kubernetes", wantLocation: "apps/pool-config"},
		"no namespace":  {spec: "kubernetes:pool-config", wantErr: "NAMESPACE/NAME"},
		"empty path":    {spec: "file:", wantErr: "empty path"},
		"no kind":       {spec: "settings.json", wantErr: "want file:PATH"},
		"unknown kind":  {spec: "etcd:/x", wantErr: "unknown kind"},
		"too many cuts": {spec: "kubernetes:a/b/c", wantErr: "NAMESPACE/NAME"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kind, loc, err := settings.Parse(tc.spec)
			if kind != tc.wantKind || loc != tc.wantLocation {
				t.Errorf("Parse = %q, %q; want %q, %q", kind, loc, tc.wantKind, tc.wantLocation)
			}
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Parse error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// recorder collects what a Watcher applies, and its logs.
type recorder struct {
	mu      sync.Mutex
	applied []settings.Settings
	logs    bytes.Buffer
}

func (r *recorder) apply(s settings.Settings) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, s)
	return nil
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.Write(p)
}

func (r *recorder) last() (settings.Settings, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.applied) == 0 {
		return settings.Settings{}, 0
	}
	return r.applied[len(r.applied)-1], len(r.applied)
}

func (r *recorder) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

// waitFor polls until the last applied settings satisfy ok, within 5 s.
func (r *recorder) waitFor(t *testing.T, what string, ok func(settings.Settings) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s, n := r.last(); n > 0 && ok(s) {
			return
		}
		if time.Now().After(deadline) {
			s, n := r.last()
			t.Fatalf("not applied within 5 s: %s (last of %d applied: %+v)\nlogs:\n%s", what, n, s, r.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkWatcher drives a Watcher through a valid change, an invalid one and
// a jwks-max-age change; put writes the source's document.
func checkWatcher(t *testing.T, src settings.Source, put func(map[string]string)) {
	t.Helper()
	rec := &recorder{}
	w := settings.NewWatcher(src, flags, rec.apply, slog.New(slog.NewJSONHandler(rec, nil)))
	got, err := w.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessTokenTTL != time.Minute || got.RefreshTokenTTL != flags.RefreshTokenTTL {
		t.Fatalf("Load = %+v, want access 1m from the source and the rest from the flags", got)
	}
	if _, n := rec.last(); n != 1 {
		t.Fatalf("Load applied %d times, want once", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	put(map[string]string{"access-token-ttl": "2m", "id-token-ttl": "15m"})
	rec.waitFor(t, "access 2m, id 15m", func(s settings.Settings) bool {
		return s.AccessTokenTTL == 2*time.Minute && s.IDTokenTTL == 15*time.Minute
	})
	if !strings.Contains(rec.log(), `"msg":"settings applied"`) || !strings.Contains(rec.log(), `"access_token_ttl":"2m0s"`) {
		t.Errorf("the applied change was not logged:\n%s", rec.log())
	}

	put(map[string]string{"access-token-ttl": "soon", "id-token-ttl": "20m"})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(rec.log(), "settings invalid, keeping the previous ones") {
		if time.Now().After(deadline) {
			t.Fatalf("the invalid document was not logged within 5 s:\n%s", rec.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(rec.log(), `access-token-ttl \"soon\": not a duration`) {
		t.Errorf("the error does not name the bad key:\n%s", rec.log())
	}
	if s, _ := rec.last(); s.AccessTokenTTL != 2*time.Minute || s.IDTokenTTL != 15*time.Minute {
		t.Errorf("after an invalid document the settings are %+v, want the previous ones", s)
	}

	put(map[string]string{"access-token-ttl": "3m", "jwks-max-age": "1m"})
	rec.waitFor(t, "access 3m", func(s settings.Settings) bool { return s.AccessTokenTTL == 3*time.Minute })
	if s, _ := rec.last(); s.JWKSMaxAge != flags.JWKSMaxAge || s.IDTokenTTL != flags.IDTokenTTL {
		t.Errorf("settings %+v: want jwks-max-age kept at the flag's %s and id-token-ttl back to the flag's %s", s, flags.JWKSMaxAge, flags.IDTokenTTL)
	}
	if !strings.Contains(rec.log(), "jwks-max-age cannot change while the server runs") {
		t.Errorf("a different jwks-max-age was not warned about:\n%s", rec.log())
	}
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	put := func(data map[string]string) {
		var b strings.Builder
		b.WriteString("{")
		first := true
		for k, v := range data {
			if !first {
				b.WriteString(",")
			}
			first = false
			b.WriteString(`"` + k + `":"` + v + `"`)
		}
		b.WriteString("}")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	put(map[string]string{"access-token-ttl": "1m"})
	src := settings.NewFile(path, nil)
	src.PollInterval = 50 * time.Millisecond
	checkWatcher(t, src, put)

	t.Run("malformed at start", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.json")
		if err := os.WriteFile(bad, []byte(`{"access-token-ttl": 60}`), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := settings.NewWatcher(settings.NewFile(bad, nil), flags, func(settings.Settings) error { return nil }, nil).Load(context.Background())
		if err == nil || !strings.Contains(err.Error(), "want a JSON object of duration strings") {
			t.Errorf("Load of a malformed file: %v", err)
		}
	})
}

// TestConfigMap follows the ConfigMap as the operator would change it,
// acting as a ServiceAccount allowed to read only that ConfigMap.
func TestConfigMap(t *testing.T) {
	admin := kubetest.Client(t)
	ns := kubetest.Namespace(t, admin)
	const name = "app-config"
	put := func(data map[string]string) {
		t.Helper()
		ctx := context.Background()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data}
		_, err := admin.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			_, err = admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("put configmap: %v", err)
		}
	}
	put(map[string]string{"access-token-ttl": "1m"})
	client := kubernetes.NewForConfigOrDie(kubetest.Restricted(t, ns, "configmaps", name))
	if _, err := client.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing every configmap as the restricted account: %v, want forbidden", err)
	}
	checkWatcher(t, settings.NewConfigMap(client, ns, name, nil), put)

	t.Run("missing", func(t *testing.T) {
		src := settings.NewConfigMap(admin, ns, "nothing-here", nil)
		src.LoadTimeout = time.Second
		_, err := src.Load(context.Background())
		if err == nil || !strings.Contains(err.Error(), ns+"/nothing-here not found") {
			t.Errorf("Load of a missing configmap: %v", err)
		}
	})
}
