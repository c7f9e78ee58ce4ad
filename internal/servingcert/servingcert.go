// Package servingcert keeps the API's TLS serving certificate current. It
// loads a certificate chain and its private key from two PEM files and
// looks at them again every few seconds, so that a renewed certificate is
// used for new connections without a restart, however the files were
// replaced: rewritten in place, renamed over, or swapped through symlinks
// as the kubelet does for a mounted Secret (cert-manager's renewals reach
// pods that way). A pair that does not load is kept out: the previous
// certificate keeps serving and the reason is logged once.
package servingcert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often Run looks at the files: a renewal is served
// within this time (the promise is 10 s).
const DefaultInterval = 2 * time.Second

// Reloader serves the certificate of a pair of PEM files through
// GetCertificate and reloads it when their content changes.
type Reloader struct {
	certFile, keyFile string
	now               func() time.Time
	log               *slog.Logger

	// Interval is how often Run polls the files. Default DefaultInterval;
	// set before Run.
	Interval time.Duration

	cert atomic.Pointer[tls.Certificate]

	mu      sync.Mutex
	digest  [32]byte // of the files' content in use
	pending [32]byte // of the unusable content seen at the last poll
	logged  [32]byte // of the unusable content last logged
}

// New loads the pair and returns a Reloader serving it. An unusable pair
// is an error naming the file at fault. now is the clock (validity
// warnings); log may be nil.
func New(certFile, keyFile string, now func() time.Time, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, now: now, log: log, Interval: DefaultInterval}
	certPEM, keyPEM, err := r.read()
	if err != nil {
		return nil, err
	}
	cert, err := r.parse(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	r.use(cert, digestOf(certPEM, keyPEM), "tls certificate loaded")
	return r, nil
}

// GetCertificate returns the certificate in use; it is tls.Config's hook,
// called for every handshake.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Leaf returns the certificate in use (its first, leaf certificate).
func (r *Reloader) Leaf() *x509.Certificate { return r.cert.Load().Leaf }

// TLSConfig is the server side of TLS: TLS 1.2 or later (1.2 only with
// forward-secret AEAD suites), HTTP/2 offered through ALPN before
// HTTP/1.1, and the certificate in use for every handshake.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{ // TLS 1.2 only; TLS 1.3's are not configurable
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: r.GetCertificate,
	}
}

// Run polls the files every Interval until ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Poll()
		}
	}
}

// Poll reads the files once and, when their content changed and loads,
// serves the new certificate from the next handshake on. Content that does
// not load is kept out; it is logged once, when a second poll finds the
// same content: a pair rewritten one file at a time is not reported while
// it is half-written.
func (r *Reloader) Poll() {
	certPEM, keyPEM, err := r.read()
	var sum [32]byte
	if err == nil {
		sum = digestOf(certPEM, keyPEM)
		r.mu.Lock()
		same := sum == r.digest
		r.mu.Unlock()
		if same {
			r.settle()
			return
		}
		var cert *tls.Certificate
		if cert, err = r.parse(certPEM, keyPEM); err == nil {
			r.use(cert, sum, "tls certificate reloaded")
			return
		}
	} else {
		sum = sha256.Sum256([]byte(err.Error()))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	settled := sum == r.pending
	r.pending = sum
	if settled && sum != r.logged {
		r.logged = sum
		r.log.Error("tls certificate files unusable, keeping the previous certificate",
			"cert_file", r.certFile, "key_file", r.keyFile, "error", err)
	}
}

// settle forgets unusable content once the files hold the pair in use
// again, so that the same bad content coming back is logged again.
func (r *Reloader) settle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending, r.logged = [32]byte{}, [32]byte{}
}

func (r *Reloader) use(cert *tls.Certificate, sum [32]byte, msg string) {
	r.cert.Store(cert)
	r.mu.Lock()
	r.digest, r.pending, r.logged = sum, [32]byte{}, [32]byte{}
	r.mu.Unlock()
	leaf := cert.Leaf
	r.log.Info(msg, "cert_file", r.certFile, "subject", leaf.Subject.String(), "dns_names", leaf.DNSNames,
		"serial", leaf.SerialNumber.String(), "not_before", leaf.NotBefore, "not_after", leaf.NotAfter)
	switch now := r.now(); {
	case now.After(leaf.NotAfter):
		r.log.Warn("tls certificate has expired: clients will refuse it", "cert_file", r.certFile, "not_after", leaf.NotAfter)
	case now.Before(leaf.NotBefore):
		r.log.Warn("tls certificate is not valid yet: clients will refuse it", "cert_file", r.certFile, "not_before", leaf.NotBefore)
	}
}

func (r *Reloader) read() (certPEM, keyPEM []byte, err error) {
	certPEM, err = os.ReadFile(r.certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls certificate file: %w", err)
	}
	keyPEM, err = os.ReadFile(r.keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls key file: %w", err)
	}
	return certPEM, keyPEM, nil
}

// errNoCertificate means the certificate file holds no PEM CERTIFICATE.
var errNoCertificate = errors.New("no PEM CERTIFICATE block")

// parse checks the certificate file on its own first, so that an error
// names the file at fault: the certificate's, or the key's when the
// certificate is fine but the key is missing, unreadable or not its own.
func (r *Reloader) parse(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	var first *pem.Block
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			first = b
			break
		}
	}
	if first == nil {
		return nil, fmt.Errorf("tls certificate file %s: %w", r.certFile, errNoCertificate)
	}
	if _, err := x509.ParseCertificate(first.Bytes); err != nil {
		return nil, fmt.Errorf("tls certificate file %s: %w", r.certFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls key file %s (for the certificate in %s): %w", r.keyFile, r.certFile, err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls certificate file %s: %w", r.certFile, err)
		}
	}
	return &cert, nil
}

func digestOf(certPEM, keyPEM []byte) [32]byte {
	return sha256.Sum256(bytes.Join([][]byte{certPEM, keyPEM}, []byte{0}))
}
