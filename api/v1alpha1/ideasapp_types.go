package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IdeasAppSpec is the desired ideapool server.
//
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || self.replicas == 1 || !has(self.database.sqlite)",message="replicas must be 1 with SQLite: one pod owns the database file; use postgres for more"
type IdeasAppSpec struct {
	// Replicas is the number of server pods. Default 2 with PostgreSQL and 1
	// with SQLite, which must be 1 (a SQLite file has one writer).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Image is the ideapool container image. Default: the operator's
	// --app-image (the image of the same release as the operator).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Issuer is the "iss" of every token and the base URL of the discovery
	// document and JWKS. Default http://NAME.NAMESPACE.svc (the Service).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +optional
	Issuer string `json:"issuer,omitempty"`

	// Resources of the server container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitzero"`

	// Database is where accounts, sessions and ideas live: exactly one of
	// sqlite (the default) or postgres.
	// +kubebuilder:default={sqlite:{size:"1Gi"}}
	// +optional
	Database DatabaseSpec `json:"database,omitzero"`

	// Tokens sets the token lifetimes; the server applies changes live.
	// +kubebuilder:default={}
	// +optional
	Tokens TokensSpec `json:"tokens,omitzero"`

	// SigningKeys says how signing keys are generated and rotated.
	// +kubebuilder:default={algorithm:"RS256",rsaBits:2048,rotationInterval:"720h",publishAhead:"1h",jwksMaxAge:"5m",clockSkew:"1m"}
	// +optional
	SigningKeys SigningKeysSpec `json:"signingKeys,omitzero"`

	// Metrics configures the server's Prometheus endpoint.
	// +kubebuilder:default={enabled:true,serviceMonitor:false}
	// +optional
	Metrics MetricsSpec `json:"metrics,omitzero"`
}

// DatabaseSpec selects the database: exactly one field is set.
//
// +kubebuilder:validation:XValidation:rule="has(self.sqlite) != has(self.postgres)",message="set exactly one of sqlite or postgres"
type DatabaseSpec struct {
	// SQLite keeps the database in a file on a PersistentVolumeClaim
	// NAME-data mounted at /data.
	// +optional
	SQLite *SQLiteSpec `json:"sqlite,omitempty"`

	// Postgres connects to an existing PostgreSQL server.
	// +optional
	Postgres *PostgresSpec `json:"postgres,omitempty"`
}

// SQLiteSpec is the volume of a SQLite database.
type SQLiteSpec struct {
	// Size of the PersistentVolumeClaim.
	// +kubebuilder:default="1Gi"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the PersistentVolumeClaim; empty means the
	// cluster's default class.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName string `json:"storageClassName,omitempty"`
}

// PostgresSpec points at the connection URL of a PostgreSQL database.
type PostgresSpec struct {
	// URLSecretRef names the Secret key holding the postgres:// URL. The
	// pods get it as the environment variable IDEAPOOL_DATABASE; the
	// operator never reads it.
	// +required
	URLSecretRef SecretKeySelector `json:"urlSecretRef"`
}

// SecretKeySelector names one key of a Secret in the IdeasApp's namespace.
type SecretKeySelector struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`
}

// TokensSpec sets token lifetimes. Each is a Go duration string ("10m",
// "720h"). The longest of accessTokenTTL and idTokenTTL decides how long a
// retired key stays published.
type TokensSpec struct {
	// AccessTokenTTL is the access token lifetime.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	// +optional
	AccessTokenTTL *metav1.Duration `json:"accessTokenTTL,omitempty"`

	// RefreshTokenTTL is the refresh token lifetime, absolute from login.
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	// +optional
	RefreshTokenTTL *metav1.Duration `json:"refreshTokenTTL,omitempty"`

	// IDTokenTTL is the OpenID Connect ID token lifetime.
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	// +optional
	IDTokenTTL *metav1.Duration `json:"idTokenTTL,omitempty"`

	// RefreshReuseGrace is how long a rotated-out refresh token may be
	// retried to get the same successor back; 0s disables it.
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must not be negative"
	// +optional
	RefreshReuseGrace *metav1.Duration `json:"refreshReuseGrace,omitempty"`
}

// SigningKeysSpec is the rotation policy of the signing keys (see
// internal/keyset). Durations are Go duration strings.
//
// +kubebuilder:validation:XValidation:rule="duration(self.publishAhead) >= duration(self.jwksMaxAge) + duration(self.clockSkew)",message="publishAhead must be at least jwksMaxAge + clockSkew, so every cached JWKS holds a key before it signs"
// +kubebuilder:validation:XValidation:rule="duration(self.rotationInterval) >= duration(self.publishAhead)",message="rotationInterval must be at least publishAhead"
type SigningKeysSpec struct {
	// Algorithm of new keys.
	// +kubebuilder:validation:Enum=RS256;ES256;EdDSA
	// +kubebuilder:default=RS256
	// +optional
	Algorithm string `json:"algorithm,omitempty"`

	// RSABits is the modulus size of RS256 keys.
	// +kubebuilder:validation:Enum=2048;3072;4096
	// +kubebuilder:default=2048
	// +optional
	RSABits int32 `json:"rsaBits,omitempty"`

	// RotationInterval is how long each key signs.
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	// +optional
	RotationInterval *metav1.Duration `json:"rotationInterval,omitempty"`

	// PublishAhead is the least time a new key is published before it
	// signs.
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration"
	// +optional
	PublishAhead *metav1.Duration `json:"publishAhead,omitempty"`

	// JWKSMaxAge is how long verifiers may cache the JWKS (Cache-Control
	// max-age).
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must not be negative"
	// +optional
	JWKSMaxAge *metav1.Duration `json:"jwksMaxAge,omitempty"`

	// ClockSkew is the largest clock difference assumed between replicas
	// and verifiers.
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must not be negative"
	// +optional
	ClockSkew *metav1.Duration `json:"clockSkew,omitempty"`
}

// MetricsSpec configures Prometheus scraping of the server.
//
// +kubebuilder:validation:XValidation:rule="!has(self.serviceMonitor) || !self.serviceMonitor || !has(self.enabled) || self.enabled",message="serviceMonitor needs enabled metrics"
type MetricsSpec struct {
	// Enabled exposes the metrics port (9090) on the Service.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// ServiceMonitor creates a prometheus-operator ServiceMonitor, when the
	// monitoring.coreos.com API exists in the cluster.
	// +kubebuilder:default=false
	// +optional
	ServiceMonitor bool `json:"serviceMonitor,omitempty"`
}

// KeyStatus is one row of the key table.
type KeyStatus struct {
	// KID is the key id: the RFC 7638 thumbprint of the public key.
	// +required
	KID string `json:"kid"`

	// Algorithm the key signs with.
	// +required
	Algorithm string `json:"algorithm"`

	// State at the last reconcile: Next (published, not signing yet),
	// Active (signing) or Retired (verify-only, still published).
	// +kubebuilder:validation:Enum=Next;Active;Retired
	// +required
	State string `json:"state"`

	// PublishedAt is when the key entered the JWKS.
	// +required
	PublishedAt metav1.Time `json:"publishedAt"`

	// ActiveAt is when the key starts (or started) signing.
	// +required
	ActiveAt metav1.Time `json:"activeAt"`

	// RetiredAt is when the key stops (or stopped) signing.
	// +optional
	RetiredAt *metav1.Time `json:"retiredAt,omitempty"`

	// RemoveAfter is when the key leaves the JWKS.
	// +optional
	RemoveAfter *metav1.Time `json:"removeAfter,omitempty"`
}

// IdeasAppStatus is what the operator observed and did.
type IdeasAppStatus struct {
	// ObservedGeneration is the metadata.generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, KeysReady, Available and Degraded (see
	// conditions.go for their reasons).
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// ActiveKeyID is the kid of the key signing now.
	// +optional
	ActiveKeyID string `json:"activeKeyID,omitempty"`

	// Keys is the key table, ordered by activeAt.
	// +listType=map
	// +listMapKey=kid
	// +optional
	Keys []KeyStatus `json:"keys,omitempty"`

	// NextRotationTime is when the next key starts signing.
	// +optional
	NextRotationTime *metav1.Time `json:"nextRotationTime,omitempty"`

	// LastRotationTime is when the active key started signing.
	// +optional
	LastRotationTime *metav1.Time `json:"lastRotationTime,omitempty"`

	// LastRotateRequest is the last handled value of the
	// ideapool.dev/rotate-keys annotation.
	// +optional
	LastRotateRequest string `json:"lastRotateRequest,omitempty"`

	// LastRevokeRequest is the last handled value (a kid) of the
	// ideapool.dev/revoke-key annotation.
	// +optional
	LastRevokeRequest string `json:"lastRevokeRequest,omitempty"`

	// ReadyReplicas is the Deployment's number of ready pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// Issuer is the effective issuer URL.
	// +optional
	Issuer string `json:"issuer,omitempty"`

	// JWKSURI is where verifiers fetch the public keys.
	// +optional
	JWKSURI string `json:"jwksURI,omitempty"`
}

// IdeasApp runs one ideapool server and keeps its signing keys fresh.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ia,categories=ideapool
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Active Key",type=string,JSONPath=`.status.activeKeyID`
// +kubebuilder:printcolumn:name="Next Rotation",type=string,JSONPath=`.status.nextRotationTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IdeasApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec IdeasAppSpec `json:"spec,omitempty"`
	// +optional
	Status IdeasAppStatus `json:"status,omitempty"`
}

// IdeasAppList is a list of IdeasApps.
//
// +kubebuilder:object:root=true
type IdeasAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IdeasApp `json:"items"`
}
