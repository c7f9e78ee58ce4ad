package controllers

import (
	"fmt"
	"path"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/contract"
)

// This file builds the desired children of an IdeasApp as server-side apply
// configurations: each names only the fields the operator owns, so defaults
// filled in by the API server (a Service's clusterIP, a pod's
// terminationMessagePath) never cause an update.

func ownerRef(app *v1alpha1.IdeasApp) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.GroupVersion.String()).
		WithKind("IdeasApp").
		WithName(app.Name).
		WithUID(app.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

func configMap(app *v1alpha1.IdeasApp, s settings) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(contract.ConfigMapName(app.Name), app.Namespace).
		WithLabels(commonLabels(app)).
		WithOwnerReferences(ownerRef(app)).
		WithData(map[string]string{
			contract.SettingAccessTokenTTL:    s.accessTTL.String(),
			contract.SettingRefreshTokenTTL:   s.refreshTTL.String(),
			contract.SettingIDTokenTTL:        s.idTTL.String(),
			contract.SettingRefreshReuseGrace: s.reuseGrace.String(),
			contract.SettingJWKSMaxAge:        s.policy.JWKSMaxAge.String(),
		})
}

func serviceAccount(app *v1alpha1.IdeasApp) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(app.Name, app.Namespace).
		WithLabels(commonLabels(app)).
		WithOwnerReferences(ownerRef(app))
}

// role lets the pods read exactly the keyset Secret and the ConfigMap.
// list and watch with resourceNames work when the client selects the one
// object with fieldSelector=metadata.name=..., which the server does.
func role(app *v1alpha1.IdeasApp) *rbacv1ac.RoleApplyConfiguration {
	verbs := []string{"get", "list", "watch"}
	return rbacv1ac.Role(app.Name, app.Namespace).
		WithLabels(commonLabels(app)).
		WithOwnerReferences(ownerRef(app)).
		WithRules(
			rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("secrets").
				WithResourceNames(contract.KeysetSecretName(app.Name)).WithVerbs(verbs...),
			rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("configmaps").
				WithResourceNames(contract.ConfigMapName(app.Name)).WithVerbs(verbs...),
		)
}

func roleBinding(app *v1alpha1.IdeasApp) *rbacv1ac.RoleBindingApplyConfiguration {
	return rbacv1ac.RoleBinding(app.Name, app.Namespace).
		WithLabels(commonLabels(app)).
		WithOwnerReferences(ownerRef(app)).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("Role").WithName(app.Name)).
		WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(app.Name).WithNamespace(app.Namespace))
}

func service(app *v1alpha1.IdeasApp, s settings) *corev1ac.ServiceApplyConfiguration {
	ports := []*corev1ac.ServicePortApplyConfiguration{
		corev1ac.ServicePort().WithName(s.scheme()).WithProtocol(corev1.ProtocolTCP).
			WithPort(s.servicePort()).WithTargetPort(intstr.FromString(s.scheme())),
	}
	if s.metrics {
		ports = append(ports, corev1ac.ServicePort().WithName("metrics").WithProtocol(corev1.ProtocolTCP).
			WithPort(contract.MetricsPort).WithTargetPort(intstr.FromString("metrics")))
	}
	return corev1ac.Service(app.Name, app.Namespace).
		WithLabels(commonLabels(app)).
		WithOwnerReferences(ownerRef(app)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(selectorLabels(app)).
			WithPorts(ports...))
}

func dataClaim(app *v1alpha1.IdeasApp, s settings) *corev1ac.PersistentVolumeClaimApplyConfiguration {
	spec := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithResources(corev1ac.VolumeResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceStorage: *s.sqlite.Size}))
	if s.sqlite.StorageClassName != "" {
		spec = spec.WithStorageClassName(s.sqlite.StorageClassName)
	}
	return corev1ac.PersistentVolumeClaim(dataClaimName(app.Name), app.Namespace).
		WithLabels(commonLabels(app)).
		WithOwnerReferences(ownerRef(app)).
		WithSpec(spec)
}

func podDisruptionBudget(app *v1alpha1.IdeasApp) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(app.Name, app.Namespace).
		WithLabels(commonLabels(app)).
		WithOwnerReferences(ownerRef(app)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(app))))
}

// serverArgs is the command line of `ideapool serve` in the Deployment.
func serverArgs(app *v1alpha1.IdeasApp, s settings) []string {
	port := func(p int) string { return fmt.Sprintf(":%d", p) }
	args := []string{
		"serve",
		contract.Arg(contract.FlagListen, port(contract.HTTPPort)),
		contract.Arg(contract.FlagMetricsListen, port(contract.MetricsPort)),
		contract.Arg(contract.FlagIssuer, s.issuer),
		contract.Arg(contract.FlagKeys, contract.KubernetesSource(app.Namespace, contract.KeysetSecretName(app.Name))),
		contract.Arg(contract.FlagConfig, contract.KubernetesSource(app.Namespace, contract.ConfigMapName(app.Name))),
		// The whole signing policy, not only what the server acts on:
		// serve checks it at start, and its defaults may not fit the spec
		// (a jwksMaxAge of 2h against the default publish-ahead of 1h).
		contract.Arg(contract.FlagJWKSMaxAge, s.policy.JWKSMaxAge.String()),
		contract.Arg(contract.FlagKeyPublishAhead, s.policy.PublishAhead.String()),
		contract.Arg(contract.FlagClockSkew, s.policy.ClockSkew.String()),
		contract.Arg(contract.FlagKeyRotationInterval, s.policy.RotationInterval.String()),
		contract.Arg(contract.FlagKeyAlgorithm, string(s.policy.Algorithm)),
		// Deleted or evicted, a pod keeps answering while kube-proxy stops
		// sending it connections, instead of refusing them.
		contract.Arg(contract.FlagShutdownDelay, shutdownDelay.String()),
	}
	if s.sqlite != nil {
		args = append(args, contract.Arg(contract.FlagDatabase, contract.SQLiteDatabase(sqliteFile)))
	}
	if s.tls != nil {
		args = append(args,
			contract.Arg(contract.FlagTLSCertFile, path.Join(contract.TLSDir, corev1.TLSCertKey)),
			contract.Arg(contract.FlagTLSKeyFile, path.Join(contract.TLSDir, corev1.TLSPrivateKeyKey)))
	}
	if len(s.trustedProxies) > 0 {
		args = append(args, contract.Arg(contract.FlagTrustedProxies, strings.Join(s.trustedProxies, ",")))
	}
	return args
}

// sqliteFile is the database file of a SQLite IdeasApp, on its volume.
const sqliteFile = contract.DataDir + "/ideapool.db"

// DesiredDeployment is the Deployment the operator keeps for app, with
// defaultImage when spec.image is empty. It lets the serve command's tests
// parse the pods' arguments with serve's own flag set.
func DesiredDeployment(app *v1alpha1.IdeasApp, defaultImage string) (*appsv1ac.DeploymentApplyConfiguration, error) {
	s, err := resolve(app, defaultImage)
	if err != nil {
		return nil, err
	}
	return deployment(app, s), nil
}

func deployment(app *v1alpha1.IdeasApp, s settings) *appsv1ac.DeploymentApplyConfiguration {
	container := corev1ac.Container().
		WithName("ideapool").
		WithImage(s.image).
		WithArgs(serverArgs(app, s)...).
		WithPorts(
			corev1ac.ContainerPort().WithName(s.scheme()).WithContainerPort(contract.HTTPPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName("metrics").WithContainerPort(contract.MetricsPort).WithProtocol(corev1.ProtocolTCP),
		).
		WithLivenessProbe(corev1ac.Probe().
			WithHTTPGet(probe("/healthz", s)).
			WithPeriodSeconds(10).WithTimeoutSeconds(2).WithFailureThreshold(3)).
		WithReadinessProbe(corev1ac.Probe().
			WithHTTPGet(probe("/readyz", s)).
			WithPeriodSeconds(5).WithTimeoutSeconds(2).WithFailureThreshold(2)).
		WithSecurityContext(corev1ac.SecurityContext().
			WithRunAsNonRoot(true).
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"))
	if r := s.resources(app); r != nil {
		container = container.WithResources(r)
	}
	volumes := []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
	}
	strategy := appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType)
	if s.sqlite != nil {
		container = container.WithVolumeMounts(corev1ac.VolumeMount().WithName("data").WithMountPath(contract.DataDir))
		volumes = append(volumes, corev1ac.Volume().WithName("data").
			WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(dataClaimName(app.Name))))
		// One pod owns the SQLite file: the old one stops before the new starts.
		strategy = appsv1ac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)
	}
	if s.tls != nil {
		container = container.WithVolumeMounts(corev1ac.VolumeMount().WithName("tls").WithMountPath(contract.TLSDir).WithReadOnly(true))
		// Readable by the pod's group (fsGroup) only: the file holds the
		// private key.
		volumes = append(volumes, corev1ac.Volume().WithName("tls").
			WithSecret(corev1ac.SecretVolumeSource().WithSecretName(s.tlsSecret).WithDefaultMode(0o440)))
	}
	if s.postgres != nil {
		ref := s.postgres.URLSecretRef
		container = container.WithEnv(corev1ac.EnvVar().WithName(contract.EnvName(contract.FlagDatabase)).
			WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(ref.Name).WithKey(ref.Key))))
	}
	pod := corev1ac.PodSpec().
		WithServiceAccountName(app.Name).
		WithAutomountServiceAccountToken(true).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(65532).
			WithRunAsGroup(65532).
			WithFSGroup(65532).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithContainers(container).
		WithVolumes(volumes...)
	return appsv1ac.Deployment(app.Name, app.Namespace).
		WithLabels(commonLabels(app)).
		WithOwnerReferences(ownerRef(app)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(s.replicas).
			WithStrategy(strategy).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(app))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(commonLabels(app)).
				WithSpec(pod)))
}

// probe is a probe's request: the kubelet connects with the pods' scheme
// (it does not check the certificate).
func probe(path string, s settings) *corev1ac.HTTPGetActionApplyConfiguration {
	scheme := corev1.URISchemeHTTP
	if s.tls != nil {
		scheme = corev1.URISchemeHTTPS
	}
	return corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString(s.scheme())).WithScheme(scheme)
}

// resources converts spec.resources into its apply configuration.
func (s settings) resources(app *v1alpha1.IdeasApp) *corev1ac.ResourceRequirementsApplyConfiguration {
	r := app.Spec.Resources
	if len(r.Limits) == 0 && len(r.Requests) == 0 {
		return nil
	}
	ac := corev1ac.ResourceRequirements()
	if len(r.Limits) > 0 {
		ac = ac.WithLimits(r.Limits)
	}
	if len(r.Requests) > 0 {
		ac = ac.WithRequests(r.Requests)
	}
	return ac
}

// ServiceMonitor API of prometheus-operator, used through unstructured
// objects so the operator does not depend on its Go modules.
const (
	monitoringGroup    = "monitoring.coreos.com"
	monitoringVersion  = "v1"
	serviceMonitorKind = "ServiceMonitor"
)

func serviceMonitor(app *v1alpha1.IdeasApp) *unstructured.Unstructured {
	u := ownedUnstructured(app, monitorGVK)
	sel := map[string]any{}
	for k, v := range selectorLabels(app) {
		sel[k] = v
	}
	u.Object["spec"] = map[string]any{
		"selector":          map[string]any{"matchLabels": sel},
		"namespaceSelector": map[string]any{"matchNames": []any{app.Namespace}},
		"endpoints": []any{map[string]any{
			"port":     "metrics",
			"path":     "/metrics",
			"interval": "30s",
		}},
	}
	return u
}

func ownerReferences(app *v1alpha1.IdeasApp, controller, block bool) []metav1.OwnerReference {
	return []metav1.OwnerReference{{
		APIVersion:         v1alpha1.GroupVersion.String(),
		Kind:               "IdeasApp",
		Name:               app.Name,
		UID:                app.UID,
		Controller:         &controller,
		BlockOwnerDeletion: &block,
	}}
}
