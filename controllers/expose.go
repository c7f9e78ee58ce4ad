package controllers

import (
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	"github.com/ideapool/ideapool/api/v1alpha1"
)

// The children that put the issuer on HTTPS and outside the cluster: the
// Ingress (a built-in type), and cert-manager's Certificate and Gateway API's
// HTTPRoute, used through unstructured objects (like the ServiceMonitor) so
// that the operator depends on neither project's Go modules and runs in
// clusters that have neither API.

// Third-party kinds the operator creates only when their API exists.
var (
	certificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}
	httpRouteGVK   = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}
	monitorGVK     = schema.GroupVersionKind{Group: monitoringGroup, Version: monitoringVersion, Kind: serviceMonitorKind}
	// ingressGVK is built in, but read uncached too (see plan).
	ingressGVK = networkingv1.SchemeGroupVersion.WithKind("Ingress")
)

// serviceDNSNames are the names the Service answers to inside the cluster.
func serviceDNSNames(app *v1alpha1.IdeasApp) []string {
	n, ns := app.Name, app.Namespace
	return []string{n, n + "." + ns, n + "." + ns + ".svc", n + "." + ns + ".svc.cluster.local"}
}

// ingress routes every path of the host to the Service's API port, with TLS
// for the host from the app's TLS Secret.
func ingress(app *v1alpha1.IdeasApp, s settings) *networkingv1ac.IngressApplyConfiguration {
	ing := s.ingress
	backend := networkingv1ac.IngressBackend().WithService(networkingv1ac.IngressServiceBackend().
		WithName(app.Name).WithPort(networkingv1ac.ServiceBackendPort().WithName(s.scheme())))
	spec := networkingv1ac.IngressSpec().
		WithTLS(networkingv1ac.IngressTLS().WithHosts(ing.Host).WithSecretName(s.tlsSecret)).
		WithRules(networkingv1ac.IngressRule().WithHost(ing.Host).WithHTTP(networkingv1ac.HTTPIngressRuleValue().
			WithPaths(networkingv1ac.HTTPIngressPath().WithPath("/").WithPathType(networkingv1.PathTypePrefix).WithBackend(backend))))
	if ing.ClassName != "" {
		spec = spec.WithIngressClassName(ing.ClassName)
	}
	ac := networkingv1ac.Ingress(app.Name, app.Namespace).
		WithLabels(commonLabels(app)).
		WithOwnerReferences(ownerRef(app)).
		WithSpec(spec)
	if len(ing.Annotations) > 0 {
		ac = ac.WithAnnotations(ing.Annotations)
	}
	return ac
}

// httpRoute attaches the host to the parent Gateways and sends every path
// to the Service's API port.
func httpRoute(app *v1alpha1.IdeasApp, s settings) *unstructured.Unstructured {
	var parents []any
	for _, p := range s.gateway.ParentRefs {
		ref := map[string]any{"name": p.Name}
		for k, v := range map[string]string{"group": p.Group, "kind": p.Kind, "namespace": p.Namespace, "sectionName": p.SectionName} {
			if v != "" {
				ref[k] = v
			}
		}
		if p.Port != 0 {
			ref["port"] = int64(p.Port)
		}
		parents = append(parents, ref)
	}
	u := ownedUnstructured(app, httpRouteGVK)
	u.Object["spec"] = map[string]any{
		"parentRefs": parents,
		"hostnames":  []any{s.host},
		"rules": []any{map[string]any{
			"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/"}}},
			"backendRefs": []any{map[string]any{"name": app.Name, "port": int64(s.servicePort())}},
		}},
	}
	return u
}

// certificate asks cert-manager for the pods' certificate: the Service's
// names and the exposed host, into the app's TLS Secret.
func certificate(app *v1alpha1.IdeasApp, s settings) *unstructured.Unstructured {
	names := serviceDNSNames(app)
	if s.host != "" {
		names = append(names, s.host)
	}
	dnsNames := make([]any, len(names))
	for i, n := range names {
		dnsNames[i] = n
	}
	ref := s.tls.CertManager.IssuerRef
	issuer := map[string]any{"name": ref.Name}
	if ref.Kind != "" {
		issuer["kind"] = ref.Kind
	}
	if ref.Group != "" {
		issuer["group"] = ref.Group
	}
	labels := map[string]any{}
	for k, v := range selectorLabels(app) {
		labels[k] = v
	}
	u := ownedUnstructured(app, certificateGVK)
	u.Object["spec"] = map[string]any{
		"secretName": s.tlsSecret,
		"dnsNames":   dnsNames,
		"issuerRef":  issuer,
		// The Secret says which IdeasApp it serves (cert-manager, not the
		// operator, manages it).
		"secretTemplate": map[string]any{"labels": labels},
	}
	return u
}

// ownedUnstructured is the skeleton of a child of kind gvk named like app.
func ownedUnstructured(app *v1alpha1.IdeasApp, gvk schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetName(app.Name)
	u.SetNamespace(app.Namespace)
	u.SetLabels(commonLabels(app))
	u.SetOwnerReferences(ownerReferences(app, true, true))
	return u
}
