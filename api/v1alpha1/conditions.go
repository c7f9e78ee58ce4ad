package v1alpha1

// Condition types of an IdeasApp.
const (
	// ConditionReady is True when the keys are in place and the server is
	// available: the IdeasApp serves and signs.
	ConditionReady = "Ready"
	// ConditionKeysReady is True when the keyset Secret holds a valid
	// keyset with a signing key, up to date with the schedule.
	ConditionKeysReady = "KeysReady"
	// ConditionAvailable is True when the Deployment has its minimum of
	// available pods.
	ConditionAvailable = "Available"
	// ConditionDegraded is True when the last reconcile failed; the
	// message says why. Keys already published keep working.
	ConditionDegraded = "Degraded"
	// ConditionTLSReady, present with spec.tls, is True when the Secret the
	// pods serve TLS from exists.
	ConditionTLSReady = "TLSReady"
	// ConditionExposed, present with spec.expose, is True when the Ingress
	// or HTTPRoute is in place.
	ConditionExposed = "Exposed"
)

// Condition reasons, by the condition and status they go with.
const (
	// ReasonReady (Ready=True): keys ready and server available.
	ReasonReady = "Ready"
	// ReasonKeysNotReady (Ready=False): KeysReady is not True.
	ReasonKeysNotReady = "KeysNotReady"
	// ReasonNotAvailable (Ready=False): Available is not True.
	ReasonNotAvailable = "NotAvailable"
	// ReasonChildConflict (Ready=False, Degraded=True): an object the
	// operator would create for the IdeasApp (its Service, ServiceAccount,
	// ConfigMap NAME-config, keyset Secret, ...) already exists and is not
	// controlled by this IdeasApp. It is left untouched, and so is every
	// other child until the conflict is gone (the children grant each other
	// access: a RoleBinding to a foreign Role or ServiceAccount would give
	// it the keys). The message names the objects; delete or rename them,
	// or rename the IdeasApp.
	ReasonChildConflict = "ChildConflict"
	// ReasonTLSNotReady (Ready=False): TLSReady is not True.
	ReasonTLSNotReady = "TLSNotReady"
	// ReasonNotExposed (Ready=False): Exposed is not True, so the issuer
	// URL does not reach the server.
	ReasonNotExposed = "NotExposed"

	// ReasonKeysUpToDate (KeysReady=True): a key signs and the schedule is
	// applied; status.nextRotationTime says when the next key signs.
	ReasonKeysUpToDate = "KeysUpToDate"
	// ReasonKeysetInvalid (KeysReady=False): the keyset Secret exists but
	// does not parse; the operator leaves it untouched for a person to fix
	// (or delete, which bootstraps a new keyset).
	ReasonKeysetInvalid = "KeysetInvalid"
	// ReasonKeysetWriteFailed (KeysReady=False): the keyset could not be
	// computed or written; retried with backoff.
	ReasonKeysetWriteFailed = "KeysetWriteFailed"

	// ReasonDeploymentAvailable (Available=True).
	ReasonDeploymentAvailable = "DeploymentAvailable"
	// ReasonDeploymentUnavailable (Available=False): the Deployment has
	// not reached its minimum of available pods yet.
	ReasonDeploymentUnavailable = "DeploymentUnavailable"

	// ReasonSecretFound (TLSReady=True): the TLS Secret exists and the
	// pods mount it.
	ReasonSecretFound = "SecretFound"
	// ReasonSecretNotFound (TLSReady=False): the TLS Secret does not exist
	// (yet: cert-manager may not have issued it); the pods cannot start
	// until it does.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonCertManagerNotInstalled (TLSReady=False): spec.tls.certManager
	// is set but the cert-manager.io API is not installed; no Certificate
	// was created. Looked at again every few minutes.
	ReasonCertManagerNotInstalled = "CertManagerNotInstalled"

	// ReasonIngressReady (Exposed=True): the Ingress is applied.
	ReasonIngressReady = "IngressReady"
	// ReasonHTTPRouteReady (Exposed=True): the HTTPRoute is applied.
	ReasonHTTPRouteReady = "HTTPRouteReady"
	// ReasonGatewayAPINotInstalled (Exposed=False): spec.expose.gateway is
	// set but the gateway.networking.k8s.io API is not installed; no
	// HTTPRoute was created. Looked at again every few minutes.
	ReasonGatewayAPINotInstalled = "GatewayAPINotInstalled"
	// ReasonExposeFailed (Exposed=False): the Ingress or HTTPRoute could
	// not be applied (a conflict, or the API server refused it).
	ReasonExposeFailed = "ExposeFailed"

	// ReasonAsExpected (Degraded=False): the last reconcile succeeded.
	ReasonAsExpected = "AsExpected"
	// ReasonReconcileFailed (Degraded=True): applying a child object or
	// the keyset failed; the message names it.
	ReasonReconcileFailed = "ReconcileFailed"
)

// Event reasons besides the key changes, which use the keyset change
// kinds: Generated, Activated, Retired, Removed, Revoked.
const (
	// EventReconcileFailed (Warning): a reconcile failed.
	EventReconcileFailed = "ReconcileFailed"
	// EventRotationRequested (Normal): a rotate-keys value was handled.
	EventRotationRequested = "RotationRequested"
	// EventRevokeFailed (Warning): a revoke-key value named no key in the
	// keyset; it is recorded as handled and not retried.
	EventRevokeFailed = "RevokeFailed"
	// EventKeysetInvalid (Warning): the keyset Secret does not parse.
	EventKeysetInvalid = "KeysetInvalid"
	// EventServiceMonitorUnsupported (Warning): a ServiceMonitor was asked
	// for but the monitoring.coreos.com API is not installed.
	EventServiceMonitorUnsupported = "ServiceMonitorUnsupported"
	// EventCertificateUnsupported (Warning): spec.tls.certManager is set
	// but the cert-manager.io API is not installed.
	EventCertificateUnsupported = "CertificateUnsupported"
	// EventHTTPRouteUnsupported (Warning): spec.expose.gateway is set but
	// the gateway.networking.k8s.io API is not installed.
	EventHTTPRouteUnsupported = "HTTPRouteUnsupported"
	// EventChildConflict (Warning): a child exists and is not controlled by
	// this IdeasApp; the message names it.
	EventChildConflict = "ChildConflict"
	// EventIssuerChanged (Warning): the effective issuer changed. Tokens
	// carry the old one in "iss", so verifiers refuse every token issued
	// before; clients must sign in again, and verifiers (kube-apiserver's
	// AuthenticationConfiguration, services' issuer settings) need the new
	// URL.
	EventIssuerChanged = "IssuerChanged"
)
