package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ideapool/ideapool/internal/servingcert"
)

// openServingCert loads the pair of --tls-cert-file and --tls-key-file
// (nil when neither is set): the API then serves TLS with it, and picks up
// a renewed pair by itself.
func openServingCert(cfg *serveConfig, log *slog.Logger) (*servingcert.Reloader, error) {
	if cfg.tlsCertFile == "" {
		return nil, nil
	}
	// The error names the file at fault and says it is the TLS one.
	return servingcert.New(cfg.tlsCertFile, cfg.tlsKeyFile, time.Now, log)
}

// registerCertExpiry exports when the certificate in use expires:
//
//	ideapool_tls_certificate_expiry_timestamp_seconds
func registerCertExpiry(reg prometheus.Registerer, certs *servingcert.Reloader) error {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ideapool_tls_certificate_expiry_timestamp_seconds",
		Help: "When the TLS certificate the API serves expires (its notAfter), in Unix seconds; it moves when a renewed certificate is loaded.",
	}, func() float64 { return float64(certs.Leaf().NotAfter.Unix()) })
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("register tls metric: %w", err)
	}
	return nil
}
