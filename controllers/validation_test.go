package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ideapool/ideapool/api/v1alpha1"
)

// unstructuredApp is an IdeasApp with a raw spec, so tests can send what a
// typed client cannot (a malformed duration).
func unstructuredApp(namespace, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind("IdeasApp")
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

// TestValidationRefusesBadSpecs checks the CRD's schema and CEL rules in
// the API server.
func TestValidationRefusesBadSpecs(t *testing.T) {
	ns := newNamespace(t)
	pg := map[string]any{"postgres": map[string]any{"urlSecretRef": map[string]any{"name": "db", "key": "url"}}}
	certManager := map[string]any{"issuerRef": map[string]any{"name": "ca"}}
	ingress := map[string]any{"host": "id.example.com", "className": "nginx"}
	gateway := map[string]any{"hostname": "id.example.com", "parentRefs": []any{map[string]any{"name": "edge", "namespace": "infra"}}}
	keys := func(kv ...string) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := map[string]struct {
		spec map[string]any
		// wantInMessage is part of the API server's refusal.
		wantInMessage string
	}{
		"two replicas on SQLite (the default database)": {
			spec: map[string]any{"replicas": int64(2)}, wantInMessage: "replicas must be 1 with SQLite"},
		"two replicas on explicit SQLite": {
			spec:          map[string]any{"replicas": int64(2), "database": map[string]any{"sqlite": map[string]any{"size": "2Gi"}}},
			wantInMessage: "replicas must be 1 with SQLite"},
		"both databases": {
			spec: map[string]any{"database": map[string]any{
				"sqlite":   map[string]any{},
				"postgres": pg["postgres"],
			}},
			wantInMessage: "set exactly one of sqlite or postgres"},
		"no database": {
			spec: map[string]any{"database": map[string]any{}}, wantInMessage: "set exactly one of sqlite or postgres"},
		"postgres without a secret key": {
			spec:          map[string]any{"database": map[string]any{"postgres": map[string]any{"urlSecretRef": map[string]any{"name": "db"}}}},
			wantInMessage: "key: Required"},
		"publishAhead shorter than jwksMaxAge + clockSkew": {
			spec:          map[string]any{"signingKeys": keys("publishAhead", "5m", "jwksMaxAge", "5m", "clockSkew", "1m")},
			wantInMessage: "publishAhead must be at least jwksMaxAge + clockSkew"},
		"rotationInterval shorter than publishAhead": {
			spec:          map[string]any{"signingKeys": keys("rotationInterval", "30m", "publishAhead", "1h")},
			wantInMessage: "rotationInterval must be at least publishAhead"},
		"malformed duration": {
			spec: map[string]any{"tokens": keys("accessTokenTTL", "ten minutes")}, wantInMessage: "accessTokenTTL"},
		"zero access token lifetime": {
			spec: map[string]any{"tokens": keys("accessTokenTTL", "0s")}, wantInMessage: "must be a positive duration"},
		"unknown algorithm": {
			spec: map[string]any{"signingKeys": keys("algorithm", "HS256")}, wantInMessage: "algorithm"},
		"odd RSA size": {
			spec: map[string]any{"signingKeys": map[string]any{"rsaBits": int64(1024)}}, wantInMessage: "rsaBits"},
		"service monitor without metrics": {
			spec:          map[string]any{"metrics": map[string]any{"enabled": false, "serviceMonitor": true}},
			wantInMessage: "serviceMonitor needs enabled metrics"},
		"issuer without a scheme": {
			spec: map[string]any{"issuer": "pool.example.com"}, wantInMessage: "issuer"},
		"an issuer with a query": {
			spec: map[string]any{"issuer": "https://id.example.com/?tenant=a"}, wantInMessage: "issuer"},
		"an issuer with a fragment": {
			spec: map[string]any{"issuer": "https://id.example.com#x"}, wantInMessage: "issuer"},
		"an issuer with a user": {
			spec: map[string]any{"issuer": "https://me@id.example.com"}, wantInMessage: "issuer"},
		"tls with both a Secret and cert-manager": {
			spec: map[string]any{"tls": map[string]any{"secretName": "c", "certManager": certManager}}, wantInMessage: "set exactly one of secretName or certManager"},
		"tls with neither": {
			spec: map[string]any{"tls": map[string]any{}}, wantInMessage: "set exactly one of secretName or certManager"},
		"cert-manager without an issuer name": {
			spec: map[string]any{"tls": map[string]any{"certManager": map[string]any{"issuerRef": map[string]any{"kind": "ClusterIssuer"}}}}, wantInMessage: "name: Required"},
		"expose through both": {
			spec: map[string]any{"expose": map[string]any{"ingress": ingress, "gateway": gateway}}, wantInMessage: "set exactly one of ingress or gateway"},
		"expose through neither": {
			spec: map[string]any{"expose": map[string]any{}}, wantInMessage: "set exactly one of ingress or gateway"},
		"an Ingress host that is a URL": {
			spec: map[string]any{"expose": map[string]any{"ingress": map[string]any{"host": "https://id.example.com"}}}, wantInMessage: "host"},
		"an Ingress host that is a wildcard": {
			spec: map[string]any{"expose": map[string]any{"ingress": map[string]any{"host": "*.example.com"}}}, wantInMessage: "host"},
		"a gateway without parents": {
			spec: map[string]any{"expose": map[string]any{"gateway": map[string]any{"hostname": "id.example.com", "parentRefs": []any{}}}}, wantInMessage: "parentRefs"},
		"a trusted proxy that is an address": {
			spec: map[string]any{"trustedProxies": []any{"10.0.0.0/8", "10.1.2.3"}}, wantInMessage: "every entry must be a CIDR"},
		"a trusted proxy that is a name": {
			spec: map[string]any{"trustedProxies": []any{"ingress-nginx"}}, wantInMessage: "every entry must be a CIDR"},
		"a TLS Secret name that is not a DNS name": {
			spec: map[string]any{"tls": map[string]any{"secretName": "Bad_Name"}}, wantInMessage: "secretName"},
		"a trusted proxy twice": {
			spec: map[string]any{"trustedProxies": []any{"10.0.0.0/8", "10.0.0.0/8"}}, wantInMessage: "Duplicate value"},
	}
	i := 0
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			i++
			u := unstructuredApp(ns, fmt.Sprintf("bad-%d", i), tc.spec)
			err := k8sClient.Create(context.Background(), u)
			if err == nil {
				t.Fatalf("the API server accepted %v", tc.spec)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("error %v, want Invalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantInMessage) {
				t.Errorf("error %q does not mention %q", err, tc.wantInMessage)
			}
		})
	}

	// Good specs pass, with every default filled in.
	good := map[string]map[string]any{
		"empty":                       {},
		"postgres, default replicas":  {"database": pg},
		"postgres, three replicas":    {"database": pg, "replicas": int64(3)},
		"sqlite, one replica":         {"replicas": int64(1), "database": map[string]any{"sqlite": map[string]any{"size": "5Gi"}}},
		"tight but valid key timings": {"signingKeys": keys("rotationInterval", "6m", "publishAhead", "6m", "jwksMaxAge", "5m", "clockSkew", "1m")},
		"tls from a Secret":           {"tls": map[string]any{"secretName": "pool-cert"}},
		"tls from cert-manager, exposed through an Ingress": {
			"tls": map[string]any{"certManager": certManager}, "expose": map[string]any{"ingress": ingress}},
		"exposed through a Gateway without tls": {"expose": map[string]any{"gateway": gateway}},
		"trusted proxies, IPv4 and IPv6":        {"trustedProxies": []any{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8"}},
	}
	for name, spec := range good {
		t.Run("accepts "+name, func(t *testing.T) {
			i++
			u := unstructuredApp(ns, fmt.Sprintf("good-%d", i), spec)
			if err := k8sClient.Create(context.Background(), u); err != nil {
				t.Fatalf("refused %v: %v", spec, err)
			}
		})
	}

	// The defaults, as the API server stores them.
	if err := k8sClient.Create(context.Background(), unstructuredApp(ns, "defaults", map[string]any{})); err != nil {
		t.Fatal(err)
	}
	got := getApp(t, &v1alpha1.IdeasApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "defaults"}})
	sp := got.Spec
	for field, pair := range map[string][2]string{
		"tokens.accessTokenTTL":        {sp.Tokens.AccessTokenTTL.Duration.String(), "10m0s"},
		"tokens.refreshTokenTTL":       {sp.Tokens.RefreshTokenTTL.Duration.String(), "720h0m0s"},
		"tokens.idTokenTTL":            {sp.Tokens.IDTokenTTL.Duration.String(), "1h0m0s"},
		"tokens.refreshReuseGrace":     {sp.Tokens.RefreshReuseGrace.Duration.String(), "5s"},
		"signingKeys.algorithm":        {sp.SigningKeys.Algorithm, "RS256"},
		"signingKeys.rotationInterval": {sp.SigningKeys.RotationInterval.Duration.String(), "720h0m0s"},
		"signingKeys.publishAhead":     {sp.SigningKeys.PublishAhead.Duration.String(), "1h0m0s"},
		"signingKeys.jwksMaxAge":       {sp.SigningKeys.JWKSMaxAge.Duration.String(), "5m0s"},
		"signingKeys.clockSkew":        {sp.SigningKeys.ClockSkew.Duration.String(), "1m0s"},
		"database.sqlite.size":         {sp.Database.SQLite.Size.String(), "1Gi"},
	} {
		if pair[0] != pair[1] {
			t.Errorf("default %s = %s, want %s", field, pair[0], pair[1])
		}
	}
	// An issuerRef names its kind and group as cert-manager defaults them.
	withTLS := unstructuredApp(ns, "tls-defaults", map[string]any{"tls": map[string]any{"certManager": certManager}})
	if err := k8sClient.Create(context.Background(), withTLS); err != nil {
		t.Fatal(err)
	}
	ref := getApp(t, &v1alpha1.IdeasApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls-defaults"}}).Spec.TLS.CertManager.IssuerRef
	if ref.Kind != "Issuer" || ref.Group != "cert-manager.io" {
		t.Errorf("issuerRef defaults: kind %q group %q, want Issuer and cert-manager.io", ref.Kind, ref.Group)
	}
	if sp.SigningKeys.RSABits != 2048 || sp.Metrics.Enabled == nil || !*sp.Metrics.Enabled || sp.Metrics.ServiceMonitor || sp.Replicas != nil {
		t.Errorf("defaults: rsaBits %d metrics %+v replicas %v", sp.SigningKeys.RSABits, sp.Metrics, sp.Replicas)
	}
}
