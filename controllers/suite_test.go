package controllers

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/keyset"
)

// One API server for the whole package: starting it costs seconds. Every
// test works in its own namespace.
var (
	testEnv    *envtest.Environment
	restConfig *rest.Config
	k8sClient  client.WithWatch
	testScheme = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "controllers: KUBEBUILDER_ASSETS is not set; these tests need kube-apiserver and etcd.\n"+
			"Run `make test`, or KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test ./controllers/...")
		return 1
	}
	if err := clientgoscheme.AddToScheme(testScheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(testScheme); err != nil {
		panic(err)
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                testScheme,
	}
	var err error
	if restConfig, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "controllers: start envtest: %v\n", err)
		// Start leaves etcd and kube-apiserver running when a later step
		// (installing the CRDs) fails.
		_ = testEnv.Stop()
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "controllers: stop envtest: %v\n", err)
		}
	}()
	if k8sClient, err = client.NewWithWatch(restConfig, client.Options{Scheme: testScheme}); err != nil {
		fmt.Fprintf(os.Stderr, "controllers: client: %v\n", err)
		return 1
	}
	ctrl.SetLogger(logr.Discard())
	return m.Run()
}

// t0 is where every fake clock starts.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// testReconciler is a reconciler on a fake clock with a recorder whose
// events the test reads.
type testReconciler struct {
	*IdeasAppReconciler
	clock  *clocktesting.FakeClock
	events *events.FakeRecorder
}

func newTestReconciler(c client.Client, clk *clocktesting.FakeClock) *testReconciler {
	rec := events.NewFakeRecorder(1000)
	return &testReconciler{
		IdeasAppReconciler: &IdeasAppReconciler{
			Client:    c,
			APIReader: c,
			Clock:     clk,
			Keys:      keyset.NewGenerator(rand.Reader),
			Recorder:  rec,
			AppImage:  "ghcr.io/ideapool/ideapool:test",
		},
		clock:  clk,
		events: rec,
	}
}

// reconcile runs one reconcile of app and fails the test on error.
func (r *testReconciler) reconcile(t *testing.T, app *v1alpha1.IdeasApp) ctrl.Result {
	t.Helper()
	res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(app)})
	if err != nil {
		t.Fatalf("reconcile %s: %v", app.Name, err)
	}
	return res
}

// drainEvents returns the events recorded so far ("Normal Generated key ...").
func (r *testReconciler) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-r.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// newNamespace creates a namespace named after the test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return name
}

// appOption changes an IdeasApp under construction.
type appOption func(*v1alpha1.IdeasApp)

// newIdeasApp builds an IdeasApp with fast ES256 keys and the given options.
func newIdeasApp(namespace, name string, opts ...appOption) *v1alpha1.IdeasApp {
	app := &v1alpha1.IdeasApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       v1alpha1.IdeasAppSpec{SigningKeys: v1alpha1.SigningKeysSpec{Algorithm: "ES256"}},
	}
	for _, o := range opts {
		o(app)
	}
	return app
}

func withPostgres(secret, key string) appOption {
	return func(a *v1alpha1.IdeasApp) {
		a.Spec.Database = v1alpha1.DatabaseSpec{Postgres: &v1alpha1.PostgresSpec{
			URLSecretRef: v1alpha1.SecretKeySelector{Name: secret, Key: key}}}
	}
}

func withReplicas(n int32) appOption {
	return func(a *v1alpha1.IdeasApp) { a.Spec.Replicas = &n }
}

// withRotation sets the rotation interval and publish-ahead time.
func withRotation(interval, ahead time.Duration) appOption {
	return func(a *v1alpha1.IdeasApp) {
		a.Spec.SigningKeys.RotationInterval = &metav1.Duration{Duration: interval}
		a.Spec.SigningKeys.PublishAhead = &metav1.Duration{Duration: ahead}
	}
}

func withTokenTTLs(access, id time.Duration) appOption {
	return func(a *v1alpha1.IdeasApp) {
		a.Spec.Tokens.AccessTokenTTL = &metav1.Duration{Duration: access}
		a.Spec.Tokens.IDTokenTTL = &metav1.Duration{Duration: id}
	}
}

// createApp creates app in the API server (which applies the CRD defaults).
func createApp(t *testing.T, app *v1alpha1.IdeasApp) *v1alpha1.IdeasApp {
	t.Helper()
	if err := k8sClient.Create(context.Background(), app); err != nil {
		t.Fatalf("create ideasapp: %v", err)
	}
	return app
}

// getApp reads the current app.
func getApp(t *testing.T, app *v1alpha1.IdeasApp) *v1alpha1.IdeasApp {
	t.Helper()
	var got v1alpha1.IdeasApp
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(app), &got); err != nil {
		t.Fatalf("get ideasapp: %v", err)
	}
	return &got
}

// annotate sets an annotation on app, as kubectl annotate --overwrite does.
func annotate(t *testing.T, app *v1alpha1.IdeasApp, key, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	if err := k8sClient.Patch(context.Background(), app, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("annotate %s=%s: %v", key, value, err)
	}
}

// storedKeyset reads and parses the keyset Secret of app.
func storedKeyset(t *testing.T, app *v1alpha1.IdeasApp) keyset.Keyset {
	t.Helper()
	var sec corev1.Secret
	key := types.NamespacedName{Namespace: app.Namespace, Name: contract.KeysetSecretName(app.Name)}
	if err := k8sClient.Get(context.Background(), key, &sec); err != nil {
		t.Fatalf("get keyset secret: %v", err)
	}
	ks, err := keyset.Parse(sec.Data[contract.KeysetDataKey])
	if err != nil {
		t.Fatalf("parse stored keyset: %v", err)
	}
	return ks
}

func kids(ks keyset.Keyset) []string {
	out := make([]string, len(ks.Keys))
	for i, k := range ks.Keys {
		out[i] = k.ID
	}
	return out
}

// get reads obj (namespace/name of app's child) or fails the test.
func get(t *testing.T, namespace, name string, obj client.Object) {
	t.Helper()
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil {
		t.Fatalf("get %T %s: %v", obj, name, err)
	}
}
