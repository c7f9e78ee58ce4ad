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
	// document and JWKS. Default: https://HOST with spec.expose (the host
	// verifiers reach), https://NAME.NAMESPACE.svc with spec.tls alone, else
	// http://NAME.NAMESPACE.svc (the Service). Set it when something else in
	// front of the pods decides the public URL. Changing the issuer, by this
	// field or by tls and expose, ends the validity of every token already
	// issued: verifiers check "iss". The operator says so in a Warning event.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s?#/@]+(/[^\s?#]*)?$`
	// +optional
	Issuer string `json:"issuer,omitempty"`

	// TLS makes the pods serve HTTPS with a certificate from a Secret: a
	// kubernetes.io/tls Secret of yours, or one cert-manager issues. The
	// Service's port is then 443, named https.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// Expose publishes the API outside the cluster at one host, through an
	// Ingress or a Gateway API HTTPRoute; the issuer becomes https://HOST.
	// The Ingress or Gateway terminates TLS for the host, so expose does
	// not require spec.tls: that is how most clusters run web services, and
	// what kube-apiserver and browsers see is the host's certificate either
	// way. With spec.tls as well, the pods serve HTTPS behind it and the
	// Ingress controller or Gateway must speak HTTPS to them (an annotation
	// such as nginx.ingress.kubernetes.io/backend-protocol: HTTPS, or a
	// BackendTLSPolicy).
	// +optional
	Expose *ExposeSpec `json:"expose,omitempty"`

	// TrustedProxies are the CIDRs of the proxies in front of the pods (the
	// Ingress controller's or Gateway's pods, a load balancer). A request
	// from one of them is attributed to the client address it reports in
	// X-Forwarded-For (the rightmost address that is not a trusted proxy),
	// so per-address limits such as the failed-login throttle hit the
	// client, not the proxy every request comes through. Empty: the peer
	// address counts and X-Forwarded-For is ignored. Passed to the pods as
	// --trusted-proxies.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="every entry must be a CIDR such as 10.0.0.0/8 or fd00::/8"
	// +listType=set
	// +optional
	TrustedProxies []string `json:"trustedProxies,omitempty"`

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

// TLSSpec says where the pods' certificate comes from: exactly one of
// secretName or certManager.
//
// +kubebuilder:validation:XValidation:rule="has(self.secretName) != has(self.certManager)",message="set exactly one of secretName or certManager"
type TLSSpec struct {
	// SecretName is a kubernetes.io/tls Secret in the IdeasApp's namespace
	// (tls.crt, tls.key, and ca.crt when a private CA signed it) whose
	// certificate names the Service (NAME.NAMESPACE.svc) and, with
	// spec.expose, the host. The pods mount it and pick up a renewed
	// certificate without a restart. With spec.expose.ingress, the Ingress
	// serves it for the host too.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// CertManager has cert-manager issue the certificate: the operator keeps
	// a Certificate NAME for NAME, NAME.NAMESPACE, NAME.NAMESPACE.svc,
	// NAME.NAMESPACE.svc.cluster.local and the exposed host, written to the
	// Secret NAME-tls. Needs the cert-manager.io API in the cluster (the
	// TLSReady condition says when it is missing), and an issuer that may
	// sign cluster-internal names (a CA or Vault issuer; ACME cannot).
	// +optional
	CertManager *CertManagerTLS `json:"certManager,omitempty"`
}

// CertManagerTLS is the cert-manager issuer of the pods' certificate.
type CertManagerTLS struct {
	// IssuerRef is the Issuer, ClusterIssuer or external issuer that signs
	// the certificate, as in a cert-manager Certificate.
	// +required
	IssuerRef IssuerReference `json:"issuerRef"`
}

// IssuerReference names a cert-manager issuer.
type IssuerReference struct {
	// Name of the issuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Kind of the issuer: Issuer (in the IdeasApp's namespace) or
	// ClusterIssuer, or an external issuer's kind.
	// +kubebuilder:default=Issuer
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Kind string `json:"kind,omitempty"`

	// Group of the issuer: cert-manager.io, or an external issuer's API
	// group.
	// +kubebuilder:default=cert-manager.io
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
}

// ExposeSpec publishes the API at one external host: exactly one of
// ingress or gateway.
//
// +kubebuilder:validation:XValidation:rule="has(self.ingress) != has(self.gateway)",message="set exactly one of ingress or gateway"
type ExposeSpec struct {
	// Ingress is a networking.k8s.io/v1 Ingress NAME for the host, with a
	// TLS entry whose Secret is spec.tls's (NAME-tls without spec.tls: have
	// it made, e.g. by cert-manager's cert-manager.io/cluster-issuer
	// annotation in annotations, or the controller serves its default
	// certificate).
	// +optional
	Ingress *IngressExpose `json:"ingress,omitempty"`

	// Gateway is a Gateway API HTTPRoute NAME attaching the host to existing
	// Gateways, whose HTTPS listeners hold the host's certificate. Needs the
	// gateway.networking.k8s.io API in the cluster (the Exposed condition
	// says when it is missing).
	// +optional
	Gateway *GatewayExpose `json:"gateway,omitempty"`
}

// IngressExpose is the Ingress of an IdeasApp.
type IngressExpose struct {
	// ClassName is the IngressClass; empty means the cluster's default.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClassName string `json:"className,omitempty"`

	// Host is the DNS name clients and verifiers use (no scheme, port or
	// wildcard); the issuer becomes https://HOST.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Host string `json:"host"`

	// Annotations on the Ingress, for its controller (and cert-manager).
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// GatewayExpose is the HTTPRoute of an IdeasApp.
type GatewayExpose struct {
	// ParentRefs are the Gateways (or their listeners) the route attaches
	// to, as in an HTTPRoute.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +required
	ParentRefs []ParentReference `json:"parentRefs"`

	// Hostname is the DNS name clients and verifiers use (no scheme, port or
	// wildcard); the issuer becomes https://HOSTNAME.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Hostname string `json:"hostname"`
}

// ParentReference is a Gateway API parentRef: the Gateway NAME (in
// NAMESPACE, default the IdeasApp's), optionally one listener of it.
type ParentReference struct {
	// Group of the parent; empty means gateway.networking.k8s.io.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`

	// Kind of the parent; empty means Gateway.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Kind string `json:"kind,omitempty"`

	// Namespace of the parent; empty means the IdeasApp's. The Gateway must
	// allow routes from this namespace.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// Name of the parent.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// SectionName is the listener of the Gateway; empty means every
	// listener that accepts the route.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SectionName string `json:"sectionName,omitempty"`

	// Port of the listener; 0 means any.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
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

	// Conditions: Ready, KeysReady, Available and Degraded, and TLSReady
	// and Exposed when spec.tls and spec.expose ask for them (see
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

	// Issuer is the effective issuer URL: the "iss" of the tokens and the
	// base of the discovery document.
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
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.status.issuer`
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
