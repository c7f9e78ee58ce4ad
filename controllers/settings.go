package controllers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ideapool/ideapool/api/v1alpha1"
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

	servicePort = 80
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
}

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
	if s.issuer == "" {
		s.issuer = fmt.Sprintf("http://%s.%s.svc", app.Name, app.Namespace)
	}
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

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// jwksURI is where the server publishes its keys under issuer.
func jwksURI(issuer string) string { return issuer + "/.well-known/jwks.json" }
