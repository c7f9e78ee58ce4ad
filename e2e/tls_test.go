package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority the test makes; its clients trust only
// it.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ideapool e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
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

// servingPair is a PEM certificate for 127.0.0.1 and localhost and its key.
type servingPair struct {
	cert, key []byte
	serial    *big.Int
	notAfter  time.Time
}

func (ca *testCA) issue(t *testing.T, serial int64, lifetime time.Duration) servingPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Now().Add(lifetime).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "ideapool"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
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
	return servingPair{
		cert:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		serial:   big.NewInt(serial),
		notAfter: notAfter,
	}
}

// secretMount lays a directory out as the kubelet does for a mounted
// kubernetes.io/tls Secret: tls.crt and tls.key link through ..data to a
// timestamped directory; an update writes a new one and renames a new
// ..data link over the old.
type secretMount struct {
	t        *testing.T
	dir, cur string
	n        int
}

func newSecretMount(t *testing.T, p servingPair) *secretMount {
	m := &secretMount{t: t, dir: t.TempDir()}
	m.update(p)
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(m.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *secretMount) certFile() string { return filepath.Join(m.dir, "tls.crt") }
func (m *secretMount) keyFile() string  { return filepath.Join(m.dir, "tls.key") }

func (m *secretMount) update(p servingPair) {
	m.n++
	ts := fmt.Sprintf("..%s.%09d", time.Now().UTC().Format("2006_01_02_15_04_05"), m.n)
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o755); err != nil {
		m.t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": p.cert, "tls.key": p.key} {
		if err := os.WriteFile(filepath.Join(m.dir, ts, name), data, 0o600); err != nil {
			m.t.Fatal(err)
		}
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.t.Fatal(err)
	}
	if m.cur != "" {
		if err := os.RemoveAll(filepath.Join(m.dir, m.cur)); err != nil {
			m.t.Fatal(err)
		}
	}
	m.cur = ts
}

// handshake opens a new connection (no session resumption) and returns
// what was negotiated.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

// TestTLS: with --tls-cert-file and --tls-key-file the API, /readyz
// included, is served over TLS 1.2+ with HTTP/2 and verified through an
// https JWKS; the issuer follows --issuer; the metrics stay plain HTTP; and
// a certificate swapped in as the kubelet does is used by new connections
// within 10 s, without a restart (issue 11).
func TestTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	first, second := ca.issue(t, 1001, 12*time.Hour), ca.issue(t, 1002, 20*time.Hour)
	mount := newSecretMount(t, first)
	client := &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	s := startServerOpts(t, serverOptions{https: client, args: []string{
		"--tls-cert-file", mount.certFile(), "--tls-key-file", mount.keyFile()}})
	addr := strings.TrimPrefix(s.Base, "https://")
	if !strings.HasPrefix(s.Base, "https://") {
		t.Fatalf("base %s is not https", s.Base)
	}

	// /readyz over TLS, HTTP/2.
	resp, err := client.Get(s.Base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET /readyz: %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}

	// TLS versions and ALPN, each on a new connection.
	base := func() *tls.Config {
		return &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1", NextProtos: []string{"h2", "http/1.1"}}
	}
	versions := map[string]struct {
		min, max uint16
		refused  bool
	}{
		"TLS 1.3": {min: tls.VersionTLS13, max: tls.VersionTLS13},
		"TLS 1.2": {min: tls.VersionTLS12, max: tls.VersionTLS12},
		"TLS 1.1": {min: tls.VersionTLS11, max: tls.VersionTLS11, refused: true},
		"TLS 1.0": {min: tls.VersionTLS10, max: tls.VersionTLS10, refused: true},
	}
	for name, v := range versions {
		t.Run(name, func(t *testing.T) {
			cfg := base()
			cfg.MinVersion, cfg.MaxVersion = v.min, v.max
			st, err := handshake(addr, cfg)
			if v.refused {
				if err == nil {
					t.Errorf("%s handshake succeeded (version %x): only TLS 1.2 and later may be served", name, st.Version)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s handshake: %v", name, err)
			}
			if st.NegotiatedProtocol != "h2" {
				t.Errorf("%s: ALPN negotiated %q, want h2", name, st.NegotiatedProtocol)
			}
			if st.PeerCertificates[0].SerialNumber.Cmp(first.serial) != 0 {
				t.Errorf("%s: served serial %s, want %s", name, st.PeerCertificates[0].SerialNumber, first.serial)
			}
		})
	}

	// Discovery: the issuer is --issuer (https), the JWKS is fetched over
	// https by a real JWKS client and verifies a token.
	testDiscovery(t, s)
	u := s.signup(t, "tls")
	if claims := s.verify(t, u.JWT); claims != nil && claims["iss"] != s.Issuer {
		t.Errorf("iss = %v, want %s", claims["iss"], s.Issuer)
	}
	if v := s.jwks(t); !strings.HasPrefix(v.jwksURI, "https://") {
		t.Errorf("jwks_uri %s is not https", v.jwksURI)
	}
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)

	// Metrics: plain HTTP on their own listener, with the certificate's
	// expiry.
	expiry := func() int64 {
		r := s.doURL(t, "GET", s.MetricsBase+"/metrics", nil, false)
		must(t, r, http.StatusOK)
		for _, x := range parseSamples(string(r.Body)) {
			if x.name == "ideapool_tls_certificate_expiry_timestamp_seconds" {
				v, err := strconv.ParseFloat(strings.Fields(x.line)[1], 64)
				if err != nil {
					t.Fatalf("%s: %v", x.line, err)
				}
				return int64(v)
			}
		}
		t.Fatalf("/metrics: no ideapool_tls_certificate_expiry_timestamp_seconds")
		return 0
	}
	if !strings.HasPrefix(s.MetricsBase, "http://") {
		t.Errorf("metrics base %s is not plain http", s.MetricsBase)
	}
	if got, want := expiry(), first.notAfter.Unix(); got != want {
		t.Errorf("certificate expiry metric %d, want %d", got, want)
	}

	// The Secret is renewed: the kubelet swaps ..data. New connections get
	// the second certificate within 10 s.
	mount.update(second)
	deadline := time.Now().Add(10 * time.Second)
	var served *big.Int
	for {
		st, err := handshake(addr, base())
		if err != nil {
			t.Fatalf("handshake while the certificate is swapped: %v", err)
		}
		served = st.PeerCertificates[0].SerialNumber
		if served.Cmp(second.serial) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if served.Cmp(second.serial) != 0 {
		t.Fatalf("10 s after the swap new connections still get serial %s, want %s\nstderr:\n%s", served, second.serial, s.stderr)
	}
	if got, want := expiry(), second.notAfter.Unix(); got != want {
		t.Errorf("certificate expiry metric after the swap %d, want %d", got, want)
	}
	// The API still answers over the new certificate.
	client.CloseIdleConnections()
	expect(t, s.do(t, "GET", "/me", nil, withToken(u.JWT)), http.StatusOK)
	if !strings.Contains(s.stderr.String(), `"msg":"tls certificate reloaded"`) {
		t.Errorf("the reload is not logged:\n%s", s.stderr)
	}
}

// TestTLSStartErrors: a bad pair at start stops serve with an error that
// names the file at fault; one flag without the other is refused.
func TestTLSStartErrors(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	p, other := ca.issue(t, 2001, time.Hour), ca.issue(t, 2002, time.Hour)
	dir := t.TempDir()
	files := map[string][]byte{"good.crt": p.cert, "good.key": p.key, "other.key": other.key, "garbage.crt": []byte("not a certificate")}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	cases := map[string]struct {
		args []string
		want string // in the error
	}{
		"key of another certificate": {args: []string{"--tls-cert-file", path("good.crt"), "--tls-key-file", path("other.key")}, want: path("other.key")},
		"certificate not PEM":        {args: []string{"--tls-cert-file", path("garbage.crt"), "--tls-key-file", path("good.key")}, want: path("garbage.crt")},
		"certificate missing":        {args: []string{"--tls-cert-file", path("missing.crt"), "--tls-key-file", path("good.key")}, want: path("missing.crt")},
		"key missing":                {args: []string{"--tls-cert-file", path("good.crt"), "--tls-key-file", path("missing.key")}, want: path("missing.key")},
		"certificate without key":    {args: []string{"--tls-cert-file", path("good.crt")}, want: "--tls-key-file"},
		"key without certificate":    {args: []string{"--tls-key-file", path("good.key")}, want: "--tls-cert-file"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			work := t.TempDir()
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
				"--database", "sqlite:" + filepath.Join(work, "db"), "--keys", "file:" + filepath.Join(work, "keyset.json")}, tc.args...)
			cmd := exec.Command(binary, args...)
			cmd.Env = cleanEnv()
			cmd.Dir = work
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("ideapool %v did not exit with the bad pair:\n%s", args, out)
			}
			if err == nil {
				t.Fatalf("ideapool %v exited 0, want an error:\n%s", args, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("ideapool %v: the error does not name %s:\n%s", args, tc.want, out)
			}
		})
	}
}
