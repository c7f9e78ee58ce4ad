package servingcert_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/servingcert"
)

// t0 is the fake clock's time: inside the test certificates' validity.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func now() time.Time { return t0 }

// pair is a certificate and its key, PEM-encoded, issued by the test CA.
type pair struct {
	cert, key []byte
	serial    string
}

// testCA issues the test's certificates; clients trust it.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "servingcert test CA"},
		NotBefore: t0.Add(-24 * time.Hour), NotAfter: t0.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a serving certificate for localhost and 127.0.0.1 valid
// from notBefore to notAfter.
func (ca *testCA) issue(t testing.TB, serial int64, notBefore, notAfter time.Time) pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pair{
		cert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		serial: big.NewInt(serial).String(),
	}
}

// certs makes a CA and the test's two real certificates.
func certs(t testing.TB) (*testCA, [2]pair) {
	t.Helper()
	ca := newCA(t)
	return ca, [2]pair{
		ca.issue(t, 101, t0.Add(-time.Hour), t0.Add(90*24*time.Hour)),
		ca.issue(t, 202, t0.Add(-time.Hour), t0.Add(90*24*time.Hour)),
	}
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// logs collects the JSON log lines of a Reloader.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count is the number of lines whose msg starts with prefix.
func (l *logs) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		var m struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && strings.HasPrefix(m.Msg, prefix) {
			n++
		}
	}
	return n
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newReloader(t testing.TB, certFile, keyFile string) (*servingcert.Reloader, *logs) {
	t.Helper()
	l := &logs{}
	r, err := servingcert.New(certFile, keyFile, now, slog.New(slog.NewJSONHandler(l, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, l
}

func serving(r *servingcert.Reloader) string {
	c, _ := r.GetCertificate(nil)
	return c.Leaf.SerialNumber.String()
}

// TestNewNamesTheBadFile: a pair that cannot serve is refused at start, by
// an error naming the file at fault.
func TestNewNamesTheBadFile(t *testing.T) {
	_, p := certs(t)
	cases := map[string]struct {
		cert, key []byte // nil: the file is missing
		blame     string // "cert" or "key"
	}{
		"certificate file missing":  {key: p[0].key, blame: "cert"},
		"key file missing":          {cert: p[0].cert, blame: "key"},
		"certificate file garbage":  {cert: []byte("not PEM"), key: p[0].key, blame: "cert"},
		"certificate file a key":    {cert: p[0].key, key: p[0].key, blame: "cert"},
		"certificate PEM truncated": {cert: p[0].cert[:len(p[0].cert)/2], key: p[0].key, blame: "cert"},
		"key file empty":            {cert: p[0].cert, key: []byte{}, blame: "key"},
		"key of another cert":       {cert: p[0].cert, key: p[1].key, blame: "key"},
		"key file a certificate":    {cert: p[0].cert, key: p[0].cert, blame: "key"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			if tc.cert != nil {
				write(t, certFile, tc.cert)
			}
			if tc.key != nil {
				write(t, keyFile, tc.key)
			}
			_, err := servingcert.New(certFile, keyFile, now, nil)
			if err == nil {
				t.Fatal("New accepts the pair")
			}
			blamed, other := certFile, keyFile
			if tc.blame == "key" {
				blamed, other = keyFile, certFile
			}
			msg := err.Error()
			if !strings.Contains(msg, blamed) {
				t.Errorf("error %q does not name %s", msg, blamed)
			}
			if tc.blame == "cert" && strings.Contains(msg, other) {
				t.Errorf("error %q names the key file, which is not at fault", msg)
			}
		})
	}
}

// kubeletDir lays out dir as the kubelet's AtomicWriter does for a mounted
// Secret: the files live in a timestamped directory, ..data links to it,
// and tls.crt and tls.key link through ..data. swap writes a new
// timestamped directory and renames a new ..data link over the old one.
type kubeletDir struct {
	t   testing.TB
	dir string
	gen int
	cur string
}

func newKubeletDir(t testing.TB, p pair) *kubeletDir {
	k := &kubeletDir{t: t, dir: t.TempDir()}
	k.swap(p)
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(k.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func (k *kubeletDir) swap(p pair) {
	k.gen++
	ts := fmt.Sprintf("..2030_01_01_12_00_%02d.%09d", k.gen, k.gen)
	if err := os.Mkdir(filepath.Join(k.dir, ts), 0o755); err != nil {
		k.t.Fatal(err)
	}
	write(k.t, filepath.Join(k.dir, ts, "tls.crt"), p.cert)
	write(k.t, filepath.Join(k.dir, ts, "tls.key"), p.key)
	tmp := filepath.Join(k.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.dir, "..data")); err != nil {
		k.t.Fatal(err)
	}
	if k.cur != "" {
		if err := os.RemoveAll(filepath.Join(k.dir, k.cur)); err != nil {
			k.t.Fatal(err)
		}
	}
	k.cur = ts
}

// TestReload: the second certificate is served after one poll, however
// the files were replaced, and nothing is reported as an error.
func TestReload(t *testing.T) {
	_, p := certs(t)
	cases := map[string]struct {
		// setup lays out the first pair and returns the two paths and the
		// replacement by the second.
		setup func(t *testing.T) (certFile, keyFile string, replace func())
	}{
		"rewritten in place": {setup: func(t *testing.T) (string, string, func()) {
			dir := t.TempDir()
			c, k := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			write(t, c, p[0].cert)
			write(t, k, p[0].key)
			return c, k, func() { write(t, c, p[1].cert); write(t, k, p[1].key) }
		}},
		"renamed over": {setup: func(t *testing.T) (string, string, func()) {
			dir := t.TempDir()
			c, k := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			write(t, c, p[0].cert)
			write(t, k, p[0].key)
			return c, k, func() {
				for path, data := range map[string][]byte{c: p[1].cert, k: p[1].key} {
					write(t, path+".new", data)
					if err := os.Rename(path+".new", path); err != nil {
						t.Fatal(err)
					}
				}
			}
		}},
		"kubelet's ..data symlink swap": {setup: func(t *testing.T) (string, string, func()) {
			kd := newKubeletDir(t, p[0])
			return filepath.Join(kd.dir, "tls.crt"), filepath.Join(kd.dir, "tls.key"), func() { kd.swap(p[1]) }
		}},
		"removed, then back renewed": {setup: func(t *testing.T) (string, string, func()) {
			dir := t.TempDir()
			c, k := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			write(t, c, p[0].cert)
			write(t, k, p[0].key)
			return c, k, func() { write(t, c, p[1].cert); write(t, k, p[1].key) }
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			certFile, keyFile, replace := tc.setup(t)
			r, l := newReloader(t, certFile, keyFile)
			if got := serving(r); got != p[0].serial {
				t.Fatalf("at start serving %s, want %s", got, p[0].serial)
			}
			r.Poll() // nothing changed
			if name == "removed, then back renewed" {
				for _, f := range []string{certFile, keyFile} {
					if err := os.Remove(f); err != nil {
						t.Fatal(err)
					}
				}
				for range 3 {
					r.Poll()
				}
				if got := serving(r); got != p[0].serial {
					t.Fatalf("files removed: serving %s, want the previous %s", got, p[0].serial)
				}
				if n := l.count("tls certificate files unusable"); n != 1 {
					t.Fatalf("files removed: %d error lines over 3 polls, want 1:\n%s", n, l)
				}
			}
			replace()
			r.Poll()
			if got := serving(r); got != p[1].serial {
				t.Fatalf("after the replacement serving %s, want %s\n%s", got, p[1].serial, l)
			}
			if got := r.Leaf().SerialNumber.String(); got != p[1].serial {
				t.Errorf("Leaf is %s, want %s", got, p[1].serial)
			}
			if n := l.count("tls certificate reloaded"); n != 1 {
				t.Errorf("%d reload lines, want 1:\n%s", n, l)
			}
			wantErrors := 0
			if name == "removed, then back renewed" {
				wantErrors = 1
			}
			if n := l.count("tls certificate files unusable"); n != wantErrors {
				t.Errorf("%d error lines, want %d:\n%s", n, wantErrors, l)
			}
		})
	}
}

// TestBadPairKeptOut: a certificate with a key that is not its own is never
// served; the previous one stays, the reason is logged once however many
// polls see it, and the good pair is taken when it arrives. A pair seen
// half-written by one poll is not reported.
func TestBadPairKeptOut(t *testing.T) {
	_, p := certs(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write(t, certFile, p[0].cert)
	write(t, keyFile, p[0].key)
	r, l := newReloader(t, certFile, keyFile)

	// Half-written: the certificate first, the key one poll later.
	write(t, certFile, p[1].cert)
	r.Poll()
	if got := serving(r); got != p[0].serial {
		t.Fatalf("half-written pair: serving %s, want the previous %s", got, p[0].serial)
	}
	write(t, keyFile, p[1].key)
	r.Poll()
	if got := serving(r); got != p[1].serial {
		t.Fatalf("after the key arrived: serving %s, want %s", got, p[1].serial)
	}
	if n := l.count("tls certificate files unusable"); n != 0 {
		t.Fatalf("a pair half-written for one poll was reported:\n%s", l)
	}

	// A bad pair that stays: the first certificate with the second key.
	write(t, certFile, p[0].cert)
	for range 5 {
		r.Poll()
	}
	if got := serving(r); got != p[1].serial {
		t.Fatalf("bad pair: serving %s, want the previous %s", got, p[1].serial)
	}
	if n := l.count("tls certificate files unusable"); n != 1 {
		t.Fatalf("bad pair over 5 polls: %d error lines, want 1:\n%s", n, l)
	}
	if !strings.Contains(l.String(), keyFile) {
		t.Errorf("the error line does not name the key file:\n%s", l)
	}

	// Other bad content is logged too, once.
	write(t, certFile, []byte("garbage"))
	for range 3 {
		r.Poll()
	}
	if n := l.count("tls certificate files unusable"); n != 2 {
		t.Fatalf("other bad content: %d error lines, want 2:\n%s", n, l)
	}

	// The good pair is taken.
	write(t, certFile, p[0].cert)
	write(t, keyFile, p[0].key)
	r.Poll()
	if got := serving(r); got != p[0].serial {
		t.Fatalf("good pair again: serving %s, want %s", got, p[0].serial)
	}
}

// TestValidityWarnings: a certificate outside its validity at the clock's
// time is served (nothing better is at hand) with a warning.
func TestValidityWarnings(t *testing.T) {
	ca, _ := certs(t)
	cases := map[string]struct {
		notBefore, notAfter time.Time
		warning             string
	}{
		"valid":         {notBefore: t0.Add(-time.Hour), notAfter: t0.Add(time.Hour)},
		"expired":       {notBefore: t0.Add(-2 * time.Hour), notAfter: t0.Add(-time.Hour), warning: "tls certificate has expired"},
		"not yet valid": {notBefore: t0.Add(time.Hour), notAfter: t0.Add(2 * time.Hour), warning: "tls certificate is not valid yet"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := ca.issue(t, 303, tc.notBefore, tc.notAfter)
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			write(t, certFile, p.cert)
			write(t, keyFile, p.key)
			_, l := newReloader(t, certFile, keyFile)
			warnings := l.count("tls certificate has expired") + l.count("tls certificate is not valid yet")
			switch {
			case tc.warning == "" && warnings != 0:
				t.Errorf("warnings for a valid certificate:\n%s", l)
			case tc.warning != "" && l.count(tc.warning) != 1:
				t.Errorf("no %q warning:\n%s", tc.warning, l)
			}
		})
	}
}

// TestTLSConfig: real handshakes against the Reloader's configuration:
// TLS 1.2 and 1.3 with HTTP/2 offered, TLS 1.1 and CBC suites refused, and
// a new connection after a reload gets the new certificate.
func TestTLSConfig(t *testing.T) {
	ca, p := certs(t)
	kd := newKubeletDir(t, p[0])
	r, _ := newReloader(t, filepath.Join(kd.dir, "tls.crt"), filepath.Join(kd.dir, "tls.key"))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	client := func(mod func(*tls.Config)) (tls.ConnectionState, error) {
		cfg := &tls.Config{RootCAs: ca.pool, ServerName: "localhost", NextProtos: []string{"h2", "http/1.1"},
			Time: now}
		if mod != nil {
			mod(cfg)
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer c.Close()
		return c.ConnectionState(), nil
	}

	cases := map[string]struct {
		mod     func(*tls.Config)
		refused bool
		version uint16
	}{
		"TLS 1.3": {version: tls.VersionTLS13},
		"TLS 1.2": {version: tls.VersionTLS12, mod: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }},
		"TLS 1.1": {refused: true, mod: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS11, tls.VersionTLS11 }},
		"TLS 1.2 with a CBC suite only": {refused: true, mod: func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st, err := client(tc.mod)
			if tc.refused {
				if err == nil {
					t.Fatalf("handshake succeeded with version %x, want it refused", st.Version)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if st.Version != tc.version || st.NegotiatedProtocol != "h2" {
				t.Errorf("version %x, protocol %q; want %x and h2", st.Version, st.NegotiatedProtocol, tc.version)
			}
			if got := st.PeerCertificates[0].SerialNumber.String(); got != p[0].serial {
				t.Errorf("served %s, want %s", got, p[0].serial)
			}
		})
	}

	kd.swap(p[1])
	r.Poll()
	st, err := client(nil)
	if err != nil {
		t.Fatalf("handshake after the swap: %v", err)
	}
	if got := st.PeerCertificates[0].SerialNumber.String(); got != p[1].serial {
		t.Errorf("a new connection after the swap got %s, want %s", got, p[1].serial)
	}
}
