// Package v1alpha1 is the ideapool.dev/v1alpha1 API: the IdeasApp resource,
// which runs one ideapool server and rotates its signing keys.
//
// # Contract between the operator and the server
//
// Every name below (flags, keys, Secret and ConfigMap names, annotations,
// ports) is defined once in internal/contract, which the operator and the
// serve command both import.
//
// For an IdeasApp NAME in namespace NS the operator keeps, all owned by the
// IdeasApp and labelled app.kubernetes.io/name=ideapool,
// app.kubernetes.io/instance=NAME, app.kubernetes.io/managed-by=ideapool-operator:
//
//   - Secret NAME-keyset (type Opaque). Its data key "keyset.json" holds
//     keyset.Marshal of the internal/keyset document. Only the operator writes
//     it; the server reads it with --keys=kubernetes:NS/NAME-keyset and
//     decides the signing key from the schedule and its own clock.
//   - ConfigMap NAME-config, whose data keys are Go duration strings read live
//     by the server (--config=kubernetes:NS/NAME-config): access-token-ttl,
//     refresh-token-ttl, id-token-ttl, refresh-reuse-grace, jwks-max-age.
//   - ServiceAccount NAME, and a Role and RoleBinding NAME granting it get,
//     list and watch on exactly those two objects (resourceNames; the server
//     lists and watches with fieldSelector=metadata.name=...).
//   - Deployment NAME running
//     "serve --listen=:8080 --metrics-listen=:9090 --issuer=ISSUER
//     --keys=kubernetes:NS/NAME-keyset --config=kubernetes:NS/NAME-config
//     --jwks-max-age=D [--database=sqlite:/data/ideapool.db]"; with PostgreSQL
//     the URL comes from the environment variable IDEAPOOL_DATABASE
//     (a secretKeyRef) and --database is omitted. With spec.tls the TLS
//     Secret is mounted at contract.TLSDir and --tls-cert-file and
//     --tls-key-file name its tls.crt and tls.key; spec.trustedProxies
//     becomes --trusted-proxies=CIDR,CIDR.
//   - Service NAME (port 80 named http, or 443 named https with spec.tls,
//     → container port 8080; metrics port 9090), PersistentVolumeClaim
//     NAME-data (SQLite only), PodDisruptionBudget NAME (more than one
//     replica), Ingress NAME (spec.expose.ingress), and, only when their API
//     exists: HTTPRoute NAME (spec.expose.gateway), cert-manager Certificate
//     NAME writing Secret NAME-tls (spec.tls.certManager) and ServiceMonitor
//     NAME (spec.metrics.serviceMonitor).
//
// An object of one of these names that exists and is not controlled by the
// IdeasApp is never changed: the IdeasApp reports ChildConflict instead.
//
// # Requests through annotations
//
// Setting contract.AnnotationRotateKeys (ideapool.dev/rotate-keys) or
// contract.AnnotationRevokeKey (ideapool.dev/revoke-key) on an IdeasApp to a
// value not handled before asks for a rotation or a revocation. Each value is
// handled once: the handled value is recorded in status.lastRotateRequest or
// status.lastRevokeRequest (and, atomically with the keys, in the annotations
// of the keyset Secret, so a lost status write never repeats a request).
//
// +kubebuilder:object:generate=true
// +groupName=ideapool.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the objects in this package.
	GroupVersion = schema.GroupVersion{Group: "ideapool.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &IdeasApp{}, &IdeasAppList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
