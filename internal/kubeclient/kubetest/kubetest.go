// Package kubetest starts a real API server and etcd (controller-runtime's
// envtest) for tests, from the binaries hack/envtest-assets.sh builds. A
// missing KUBEBUILDER_ASSETS fails the test: these tests never skip.
package kubetest

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Missing is the failure message when KUBEBUILDER_ASSETS is not set.
const Missing = "KUBEBUILDER_ASSETS is not set: run `make test`, or " +
	"`KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test ...` (it builds kube-apiserver and etcd once, then caches them)"

var (
	mu      sync.Mutex
	env     *envtest.Environment
	cfg     *rest.Config
	started bool
	err     error
)

// Config returns the admin configuration of the package's API server,
// starting it on first use; Stop (from TestMain) stops it.
func Config(t testing.TB) *rest.Config {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if !started {
		started = true
		e := &envtest.Environment{}
		if cfg, err = Start(e); err == nil {
			env = e
		}
	}
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	return rest.CopyConfig(cfg)
}

// Start starts e (its BinaryAssetsDirectory from KUBEBUILDER_ASSETS) and
// returns the admin configuration; the caller stops it.
func Start(e *envtest.Environment) (*rest.Config, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		return nil, errMissing{}
	}
	e.BinaryAssetsDirectory = dir
	ctrllog.SetLogger(logr.Discard()) // envtest logs through controller-runtime's logger
	return e.Start()
}

type errMissing struct{}

func (errMissing) Error() string { return Missing }

// Client returns a clientset for the package's API server.
func Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(Config(t))
}

// Stop stops the API server Config started, if any.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if env != nil {
		_ = env.Stop()
		env = nil
	}
}

// Namespace creates a namespace with a name unique in the API server.
func Namespace(t testing.TB, client kubernetes.Interface) string {
	t.Helper()
	ns, err := client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// Restricted returns a configuration that acts as a new ServiceAccount of
// namespace whose only permission is get, list and watch on the named
// objects of resource (in the core group), as the operator's Role gives the
// server's pods.
func Restricted(t testing.TB, namespace, resource string, names ...string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	client := Client(t)
	const sa = "restricted"
	meta := metav1.ObjectMeta{Name: sa, Namespace: namespace}
	if _, err := client.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account: %v", err)
	}
	role := &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{resource}, ResourceNames: names,
		Verbs: []string{"get", "list", "watch"},
	}}}
	if _, err := client.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: meta,
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: namespace}},
	}
	if _, err := client.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role binding: %v", err)
	}
	c := Config(t)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespace + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	return c
}
