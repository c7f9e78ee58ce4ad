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
)

// Condition reasons, by the condition and status they go with.
const (
	// ReasonReady (Ready=True): keys ready and server available.
	ReasonReady = "Ready"
	// ReasonKeysNotReady (Ready=False): KeysReady is not True.
	ReasonKeysNotReady = "KeysNotReady"
	// ReasonNotAvailable (Ready=False): Available is not True.
	ReasonNotAvailable = "NotAvailable"

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
)
