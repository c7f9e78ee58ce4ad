package controllers

import (
	"fmt"
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/keyset"
)

// Names of the operator's own; the names shared with `ideapool serve` are in
// internal/contract.
const (
	// FieldOwner is the server-side apply field manager of the operator.
	FieldOwner = "ideapool-operator"

	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "ideapool-operator"

	// shutdownDelay is how long a server pod keeps serving after SIGTERM;
	// with the server's 20s shutdown timeout it stays within the pod's
	// default 30s termination grace period.
	shutdownDelay = 5 * time.Second

	// The Service's port: 80 named http, or 443 named https when the pods
	// serve TLS (port names say the protocol, for meshes and people).
	servicePortHTTP  = 80
	servicePortHTTPS = 443
)

// dataClaimName is the PersistentVolumeClaim of a SQLite IdeasApp.
func dataClaimName(name string) string { return name + "-data" }

// selectorLabels select the pods of one IdeasApp: name and instance only,
// so they never change.
func selectorLabels(app *v1alpha1.IdeasApp) map[string]string {
	return map[string]string{labelName: "ideapool", labelInstance: app.Name}
}

// commonLabels go on every child.
func commonLabels(app *v1alpha1.IdeasApp) map[string]string {
	l := selectorLabels(app)
	l[labelManagedBy] = managedBy
	return l
}

// settings is an IdeasApp's spec with every default filled in. The API
// server applies the CRD defaults, but objects built in Go (tests, older
// stored objects) may miss some, so the operator fills them again.
type settings struct {
	replicas int32
	image    string
	issuer   string
	sqlite   *v1alpha1.SQLiteSpec
	postgres *v1alpha1.PostgresSpec

	accessTTL, refreshTTL, idTTL, reuseGrace time.Duration
	policy                                   keyset.Policy

	metrics, serviceMonitor bool

	// tls is spec.tls (nil: the pods serve plain HTTP); tlsSecret is the
	// Secret they serve it from.
	tls       *v1alpha1.TLSSpec
	tlsSecret string
	// ingress or gateway is spec.expose's, and host the external host.
	ingress *v1alpha1.IngressExpose
	gateway *v1alpha1.GatewayExpose
	host    string

	trustedProxies []string
}

// scheme is the protocol the pods and the Service speak.
func (s settings) scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}

// servicePort is the Service's API port; its name and the container
// port's are s.scheme().
func (s settings) servicePort() int32 {
	if s.tls != nil {
		return servicePortHTTPS
	}
	return servicePortHTTP
}

// exposed reports whether spec.expose asks for an Ingress or HTTPRoute.
func (s settings) exposed() bool { return s.ingress != nil || s.gateway != nil }

// resolve fills defaults into app's spec and validates what the CRD's CEL
// rules validate, for objects that did not pass through the API server.
func resolve(app *v1alpha1.IdeasApp, defaultImage string) (settings, error) {
	sp := app.Spec
	s := settings{
		image:    sp.Image,
		issuer:   sp.Issuer,
		sqlite:   sp.Database.SQLite,
		postgres: sp.Database.Postgres,
	}
	if s.image == "" {
		s.image = defaultImage
	}
	if err := s.resolveTLSAndExpose(app); err != nil {
		return settings{}, err
	}
	if s.issuer == "" {
		s.issuer = defaultIssuer(app, s)
	}
	for i, c := range sp.TrustedProxies {
		if _, err := netip.ParsePrefix(c); err != nil {
			return settings{}, fmt.Errorf("spec.trustedProxies[%d]: %q is not a CIDR such as 10.0.0.0/8", i, c)
		}
	}
	s.trustedProxies = sp.TrustedProxies
	switch {
	case s.sqlite != nil && s.postgres != nil:
		return settings{}, fmt.Errorf("spec.database: set exactly one of sqlite or postgres")
	case s.sqlite == nil && s.postgres == nil:
		s.sqlite = &v1alpha1.SQLiteSpec{}
	}
	if s.sqlite != nil && s.sqlite.Size == nil {
		sq := *s.sqlite
		q := resource.MustParse("1Gi")
		sq.Size = &q
		s.sqlite = &sq
	}
	s.replicas = 2
	if s.sqlite != nil {
		s.replicas = 1
	}
	if sp.Replicas != nil {
		s.replicas = *sp.Replicas
	}
	if s.sqlite != nil && s.replicas > 1 {
		return settings{}, fmt.Errorf("spec.replicas: must be 1 with SQLite, got %d", s.replicas)
	}

	t := sp.Tokens
	s.accessTTL = durationOr(t.AccessTokenTTL, 10*time.Minute)
	s.refreshTTL = durationOr(t.RefreshTokenTTL, 720*time.Hour)
	s.idTTL = durationOr(t.IDTokenTTL, time.Hour)
	s.reuseGrace = durationOr(t.RefreshReuseGrace, 5*time.Second)

	k := sp.SigningKeys
	s.policy = keyset.Policy{
		Algorithm:        keyset.Algorithm(k.Algorithm),
		RSABits:          int(k.RSABits),
		RotationInterval: durationOr(k.RotationInterval, keyset.DefaultRotationInterval),
		PublishAhead:     durationOr(k.PublishAhead, keyset.DefaultPublishAhead),
		JWKSMaxAge:       durationOr(k.JWKSMaxAge, keyset.DefaultJWKSMaxAge),
		ClockSkew:        durationOr(k.ClockSkew, keyset.DefaultClockSkew),
		MaxTokenTTL:      max(s.accessTTL, s.idTTL),
	}.WithDefaults()
	if err := s.policy.Validate(); err != nil {
		return settings{}, fmt.Errorf("spec.signingKeys: %w", err)
	}

	s.metrics = sp.Metrics.Enabled == nil || *sp.Metrics.Enabled
	s.serviceMonitor = s.metrics && sp.Metrics.ServiceMonitor
	return s, nil
}

// resolveTLSAndExpose checks spec.tls and spec.expose as the CRD's rules
// do and fills their part of s.
func (s *settings) resolveTLSAndExpose(app *v1alpha1.IdeasApp) error {
	if t := app.Spec.TLS; t != nil {
		if (t.SecretName != "") == (t.CertManager != nil) {
			return fmt.Errorf("spec.tls: set exactly one of secretName or certManager")
		}
		if t.CertManager != nil && t.CertManager.IssuerRef.Name == "" {
			return fmt.Errorf("spec.tls.certManager.issuerRef.name: must not be empty")
		}
		s.tls = t
	}
	s.tlsSecret = contract.TLSSecretName(app.Name)
	if s.tls != nil && s.tls.SecretName != "" {
		s.tlsSecret = s.tls.SecretName
	}
	if e := app.Spec.Expose; e != nil {
		switch {
		case (e.Ingress != nil) == (e.Gateway != nil):
			return fmt.Errorf("spec.expose: set exactly one of ingress or gateway")
		case e.Ingress != nil && e.Ingress.Host == "":
			return fmt.Errorf("spec.expose.ingress.host: must not be empty")
		case e.Gateway != nil && (e.Gateway.Hostname == "" || len(e.Gateway.ParentRefs) == 0):
			return fmt.Errorf("spec.expose.gateway: needs a hostname and at least one parentRef")
		case e.Ingress != nil:
			s.ingress, s.host = e.Ingress, e.Ingress.Host
		default:
			s.gateway, s.host = e.Gateway, e.Gateway.Hostname
		}
	}
	return nil
}

// defaultIssuer is the issuer when spec.issuer is empty: the URL verifiers
// reach the server at.
func defaultIssuer(app *v1alpha1.IdeasApp, s settings) string {
	if s.host != "" {
		return "https://" + s.host
	}
	return fmt.Sprintf("%s://%s.%s.svc", s.scheme(), app.Name, app.Namespace)
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}
