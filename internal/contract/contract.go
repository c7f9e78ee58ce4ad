// Package contract names everything the operator writes and the server
// reads: the flags of `ideapool serve` that the operator passes to its pods,
// the keys of the settings ConfigMap, the keyset Secret and its data key,
// the source specs of --keys and --config, the annotations a person sets on
// an IdeasApp, and the ports and mounts of the pods. Both sides import these
// names (controllers/ and the serve command, keeping server/ and
// controllers/ apart), so a name renamed on one side cannot ship: the
// compiler, or the test that parses the Deployment's arguments with serve's
// own flag set, refuses it.
package contract

import (
	"fmt"
	"strings"
)

// Flags of `ideapool serve` that the operator sets in the Deployment. Every
// flag can also be set with its environment variable, EnvName(flag).
const (
	FlagListen              = "listen"
	FlagMetricsListen       = "metrics-listen"
	FlagDatabase            = "database"
	FlagKeys                = "keys"
	FlagConfig              = "config"
	FlagIssuer              = "issuer"
	FlagAccessTokenTTL      = "access-token-ttl"
	FlagRefreshTokenTTL     = "refresh-token-ttl"
	FlagIDTokenTTL          = "id-token-ttl" //nolint:gosec // G101: a flag name, not a credential
	FlagRefreshReuseGrace   = "refresh-reuse-grace"
	FlagJWKSMaxAge          = "jwks-max-age"
	FlagKeyPublishAhead     = "key-publish-ahead"
	FlagClockSkew           = "clock-skew"
	FlagKeyRotationInterval = "key-rotation-interval"
	FlagKeyAlgorithm        = "key-algorithm"
	FlagTLSCertFile         = "tls-cert-file"
	FlagTLSKeyFile          = "tls-key-file"
	FlagTrustedProxies      = "trusted-proxies"
	FlagShutdownDelay       = "shutdown-delay"
)

// Arg is one flag as the operator writes it: --flag=value.
func Arg(flag, value string) string { return "--" + flag + "=" + value }

// EnvName is the environment variable that sets flag:
// IDEAPOOL_<FLAG_IN_UPPER_SNAKE>, e.g. IDEAPOOL_ACCESS_TOKEN_TTL.
func EnvName(flag string) string {
	return "IDEAPOOL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Keys of the settings document (the ConfigMap the operator writes, or the
// JSON file of --config=file:PATH): the lifetimes that may change while the
// server runs. Each is the name of the serve flag it overrides and holds a
// Go duration string.
const (
	SettingAccessTokenTTL    = FlagAccessTokenTTL
	SettingRefreshTokenTTL   = FlagRefreshTokenTTL
	SettingIDTokenTTL        = FlagIDTokenTTL
	SettingRefreshReuseGrace = FlagRefreshReuseGrace
	SettingJWKSMaxAge        = FlagJWKSMaxAge
)

// KeysetDataKey is the data key of the keyset document in the keyset Secret.
const KeysetDataKey = "keyset.json"

// KeysetSecretName is the Secret holding the keyset of IdeasApp app.
func KeysetSecretName(app string) string { return app + "-keyset" }

// ConfigMapName is the ConfigMap holding the settings of IdeasApp app.
func ConfigMapName(app string) string { return app + "-config" }

// TLSSecretName is the kubernetes.io/tls Secret of IdeasApp app when its
// spec.tls does not name one: where cert-manager writes the certificate of
// spec.tls.certManager, and the Ingress's TLS Secret without spec.tls.
func TLSSecretName(app string) string { return app + "-tls" }

// Kinds of the source specs of --keys and --config.
const (
	SourceFile       = "file"
	SourceKubernetes = "kubernetes"
)

// KubernetesSource is the spec of an object the server watches:
// "kubernetes:NAMESPACE/NAME".
func KubernetesSource(namespace, name string) string {
	return fmt.Sprintf("%s:%s/%s", SourceKubernetes, namespace, name)
}

// FileSource is the spec of a file the server reads: "file:PATH".
func FileSource(path string) string { return SourceFile + ":" + path }

// SQLiteDatabase is the --database value of a SQLite file at path.
func SQLiteDatabase(path string) string { return "sqlite:" + path }

// Where the server publishes its OpenID Connect documents, under its
// issuer: the operator writes JWKSURI into status.jwksURI, the server into
// its discovery document.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/.well-known/jwks.json"
)

// JWKSURI is where verifiers fetch the public keys of issuer.
func JWKSURI(issuer string) string { return strings.TrimRight(issuer, "/") + JWKSPath }

// Annotations a person (or `kubectl ideapool`) sets on an IdeasApp, and
// those the operator records on the keyset Secret.
const (
	// AnnotationRotateKeys asks for a rotation whenever its value changes to
	// one not handled before (status.lastRotateRequest): the Next key
	// signs as soon as it has been published for jwksMaxAge + clockSkew,
	// and a new Next key is published.
	AnnotationRotateKeys = "ideapool.dev/rotate-keys"
	// AnnotationRevokeKey names a kid to revoke at once: a fresh key signs
	// immediately and the kid leaves the keyset. Handled once per value
	// (status.lastRevokeRequest).
	AnnotationRevokeKey = "ideapool.dev/revoke-key"
	// AnnotationHandledRotate and AnnotationHandledRevoke, on the keyset
	// Secret, record the request values handled together with the keys
	// they produced, so that a status write lost after the Secret write
	// never handles a request twice.
	AnnotationHandledRotate = "ideapool.dev/handled-rotate-keys"
	AnnotationHandledRevoke = "ideapool.dev/handled-revoke-key"
)

// Ports and paths of the server's pods.
const (
	// HTTPPort is the container port of the API (named "http", or "https"
	// when the pods serve TLS).
	HTTPPort = 8080
	// MetricsPort is the container port of /metrics (named "metrics").
	MetricsPort = 9090
	// DataDir is where a SQLite IdeasApp's volume is mounted.
	DataDir = "/data"
	// TLSDir is where the pods mount the IdeasApp's kubernetes.io/tls
	// Secret; --tls-cert-file and --tls-key-file name its tls.crt and
	// tls.key (corev1.TLSCertKey, corev1.TLSPrivateKeyKey). The kubelet
	// replaces them through symlinks when the Secret changes.
	TLSDir = "/etc/ideapool/tls"
)
