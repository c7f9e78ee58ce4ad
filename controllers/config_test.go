package controllers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kustomize renders a directory of config/ with the kubectl of the envtest
// assets.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	out, err := exec.Command(kubectl, "kustomize", filepath.Join("..", "config", dir)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/%s: %v\n%s", dir, err, out)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("decode config/%s: %v", dir, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// TestConfigApplies renders config/default and config/samples and has the
// API server validate every object (server-side dry run for the operator's
// own objects; the samples are created for real against the CRD's rules).
func TestConfigApplies(t *testing.T) {
	ctx := context.Background()
	objs := kustomize(t, "default")
	kinds := map[string]int{}
	for _, u := range objs {
		kinds[u.GetKind()]++
		switch u.GetKind() {
		case "CustomResourceDefinition":
			continue // installed by envtest from config/crd/bases
		case "Namespace":
			if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u.GetName()}}); client.IgnoreAlreadyExists(err) != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := k8sClient.Create(ctx, u, client.DryRunAll); err != nil {
			t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for _, k := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"} {
		if kinds[k] == 0 {
			t.Errorf("config/default renders no %s", k)
		}
	}

	ns := newNamespace(t)
	for _, u := range kustomize(t, "samples") {
		u.SetNamespace(ns)
		if err := k8sClient.Create(ctx, u); err != nil {
			t.Errorf("sample %s refused: %v", u.GetName(), err)
		}
	}
}
