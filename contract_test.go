package main

import (
	"flag"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/controllers"
	"github.com/ideapool/ideapool/internal/contract"
)

// TestDeploymentArgumentsParse builds the Deployment the operator keeps for
// IdeasApps of every shape and parses its container's arguments and
// environment with serve's own flag set: a flag renamed on one side, or a
// spec the CRD accepts that serve refuses, fails here.
func TestDeploymentArgumentsParse(t *testing.T) {
	d := func(v time.Duration) *metav1.Duration { return &metav1.Duration{Duration: v} }
	size := resource.MustParse("2Gi")
	tests := map[string]struct {
		spec v1alpha1.IdeasAppSpec
		// flags are values serve must read, by flag name.
		flags map[string]string
		want  func(t *testing.T, c serveConfig)
	}{
		"defaults": {
			want: func(t *testing.T, c serveConfig) {
				if c.issuer != "http://pool.ns.svc" || c.database != "sqlite:/data/ideapool.db" {
					t.Errorf("issuer %q, database %q", c.issuer, c.database)
				}
			},
		},
		"sqlite with policy": {
			spec: v1alpha1.IdeasAppSpec{
				Issuer:   "https://id.example.com",
				Database: v1alpha1.DatabaseSpec{SQLite: &v1alpha1.SQLiteSpec{Size: &size}},
				SigningKeys: v1alpha1.SigningKeysSpec{Algorithm: "ES256", RotationInterval: d(3 * time.Hour),
					PublishAhead: d(2 * time.Hour), JWKSMaxAge: d(time.Hour), ClockSkew: d(time.Minute)},
			},
			want: func(t *testing.T, c serveConfig) {
				if c.issuer != "https://id.example.com" || c.keyAlgorithm != "ES256" || c.jwksMaxAge != time.Hour ||
					c.publishAhead != 2*time.Hour || c.rotationInterval != 3*time.Hour {
					t.Errorf("parsed %+v", c)
				}
			},
		},
		"behind trusted proxies": {
			spec:  v1alpha1.IdeasAppSpec{TrustedProxies: []string{"10.0.0.0/8", "fd00::/8"}},
			flags: map[string]string{contract.FlagTrustedProxies: "10.0.0.0/8,fd00::/8"},
		},
		"tls from a Secret": {
			spec: v1alpha1.IdeasAppSpec{TLS: &v1alpha1.TLSSpec{SecretName: "pool-cert"}},
			flags: map[string]string{
				contract.FlagTLSCertFile: contract.TLSDir + "/tls.crt",
				contract.FlagTLSKeyFile:  contract.TLSDir + "/tls.key",
				contract.FlagIssuer:      "https://pool.ns.svc",
			},
		},
		"exposed, tls from cert-manager": {
			spec: v1alpha1.IdeasAppSpec{
				TLS:    &v1alpha1.TLSSpec{CertManager: &v1alpha1.CertManagerTLS{IssuerRef: v1alpha1.IssuerReference{Name: "ca"}}},
				Expose: &v1alpha1.ExposeSpec{Ingress: &v1alpha1.IngressExpose{Host: "id.example.com"}},
			},
			flags: map[string]string{
				contract.FlagTLSCertFile: contract.TLSDir + "/tls.crt",
				contract.FlagIssuer:      "https://id.example.com",
			},
		},
		"postgres": {
			spec: v1alpha1.IdeasAppSpec{Database: v1alpha1.DatabaseSpec{Postgres: &v1alpha1.PostgresSpec{
				URLSecretRef: v1alpha1.SecretKeySelector{Name: "db", Key: "url"}}}},
			want: func(t *testing.T, c serveConfig) {
				if c.database != "postgres://from-the-secret" {
					t.Errorf("database %q: the environment variable the Deployment sets was not read", c.database)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			app := &v1alpha1.IdeasApp{ObjectMeta: metav1.ObjectMeta{Name: "pool", Namespace: "ns"}, Spec: tc.spec}
			dep, err := controllers.DesiredDeployment(app, "example.com/ideapool:test")
			if err != nil {
				t.Fatal(err)
			}
			containers := dep.Spec.Template.Spec.Containers
			if len(containers) != 1 {
				t.Fatalf("want one container, got %d", len(containers))
			}
			args := containers[0].Args
			if len(args) == 0 || args[0] != "serve" {
				t.Fatalf("args %q: want the serve command first", args)
			}
			for _, e := range containers[0].Env {
				value := ""
				switch {
				case e.Value != nil:
					value = *e.Value
				case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					value = "postgres://from-the-secret"
				}
				if !strings.HasPrefix(*e.Name, "IDEAPOOL_") {
					continue
				}
				t.Setenv(*e.Name, value)
			}
			var cfg serveConfig
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			cfg.register(fs)
			if err := parseFlags(fs, args[1:], "", io.Discard, io.Discard); err != nil {
				t.Fatalf("serve refuses the Deployment's arguments %q: %v", args[1:], err)
			}
			for _, a := range args[1:] {
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if fs.Lookup(name) == nil {
					t.Errorf("argument %q names no flag of serve", a)
				}
			}
			if err := cfg.validate(); err != nil {
				t.Fatalf("serve refuses the Deployment's settings: %v", err)
			}
			if err := cfg.policy().Validate(); err != nil {
				t.Fatalf("serve refuses the Deployment's signing policy: %v", err)
			}
			want := map[string]string{
				contract.FlagKeys:   contract.KubernetesSource("ns", contract.KeysetSecretName("pool")),
				contract.FlagConfig: contract.KubernetesSource("ns", contract.ConfigMapName("pool")),
			}
			maps.Copy(want, tc.flags)
			for f, v := range want {
				if got := fs.Lookup(f).Value.String(); got != v {
					t.Errorf("--%s = %q, want %q", f, got, v)
				}
			}
			if tc.want != nil {
				tc.want(t, cfg)
			}
		})
	}
}

func TestValidIssuer(t *testing.T) {
	tests := map[string]bool{ // issuer → valid
		"https://id.example.com":        true,
		"http://localhost:8080":         true,
		"https://id.example.com/tenant": true,
		"https://id.example.com/":       true,
		"ftp://id.example.com":          false,
		"id.example.com":                false,
		"https://":                      false,
		"https://id.example.com?x=1":    false,
		"https://id.example.com/?":      false,
		"https://id.example.com#top":    false,
		"https://user:pw@example.com":   false,
	}
	for issuer, valid := range tests {
		if err := validIssuer(issuer); (err == nil) != valid {
			t.Errorf("validIssuer(%q) = %v, want valid %v", issuer, err, valid)
		}
	}
}
