package keysource_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/keysource"
	"github.com/ideapool/ideapool/internal/kubeclient/kubetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.Stop()
	os.Exit(code)
}

// newKeyset is a valid keyset whose first key signs now; seed varies it.
func newKeyset(t *testing.T, seed byte) []byte {
	t.Helper()
	ks, _, err := keyset.Advance(keyset.Keyset{}, policy, time.Now(), newGen(seed))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := keyset.Marshal(ks)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func rawKids(raw []byte) string {
	ks, err := keyset.Parse(raw)
	if err != nil {
		return "invalid: " + err.Error()
	}
	return kids(ks)
}

// putSecret creates or updates the keyset Secret.
func putSecret(t *testing.T, client kubernetes.Interface, ns, name string, data []byte) {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string][]byte{keysource.SecretKey: data}}
	_, err := client.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("put secret %s/%s: %v", ns, name, err)
	}
}

func TestKubernetesLoad(t *testing.T) {
	admin := kubetest.Client(t)
	ns := kubetest.Namespace(t, admin)
	ks1 := newKeyset(t, 1)

	t.Run("waits for the secret", func(t *testing.T) {
		src := keysource.NewKubernetes(admin, ns, "late", nil)
		src.LoadTimeout = 20 * time.Second
		go func() {
			time.Sleep(time.Second)
			putSecret(t, admin, ns, "late", ks1)
		}()
		ks, err := src.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := kids(ks), rawKids(ks1); got != want {
			t.Errorf("loaded kids %s, want %s", got, want)
		}
	})

	cases := map[string]struct {
		data    map[string][]byte // nil: no Secret at all
		wantErr string
	}{
		"missing secret": {wantErr: "not found (the operator creates it)"},
		"no data key":    {data: map[string][]byte{"other": ks1}, wantErr: "no keyset.json data key"},
		"not a keyset":   {data: map[string][]byte{keysource.SecretKey: []byte(`{"keys": 1}`)}, wantErr: "invalid keyset"},
		"no keys":        {data: map[string][]byte{keysource.SecretKey: []byte(`{"keys": []}`)}, wantErr: "no keys"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			secret := strings.ReplaceAll(name, " ", "-")
			if tc.data != nil {
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: ns}, Data: tc.data}
				if _, err := admin.CoreV1().Secrets(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			src := keysource.NewKubernetes(admin, ns, secret, nil)
			src.LoadTimeout = time.Second
			_, err := src.Load(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), ns+"/"+secret) ||
				!strings.Contains(err.Error(), "gave up after 1s") {
				t.Errorf("Load error = %v; want it to name the secret, the wait and %q", err, tc.wantErr)
			}
		})
	}
}

// TestKubernetesRun follows the Secret as the operator would change it,
// acting as a ServiceAccount allowed to read only that Secret.
func TestKubernetesRun(t *testing.T) {
	admin := kubetest.Client(t)
	ns := kubetest.Namespace(t, admin)
	const name = "app-keyset"
	putSecret(t, admin, ns, name, newKeyset(t, 1))
	putSecret(t, admin, ns, "someone-else", newKeyset(t, 9))
	client := kubernetes.NewForConfigOrDie(kubetest.Restricted(t, ns, "secrets", name))
	if _, err := client.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing every secret as the restricted account: %v, want forbidden (the Role is not restrictive)", err)
	}

	logs := &syncBuffer{}
	src := keysource.NewKubernetes(client, ns, name, slog.New(slog.NewJSONHandler(logs, nil)))
	first, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan keyset.Keyset, 10)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(ks keyset.Keyset) { changes <- ks }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	expect := func(want []byte) {
		t.Helper()
		select {
		case ks := <-changes:
			if got := kids(ks); got != rawKids(want) {
				t.Fatalf("onChange with kids %s, want %s", got, rawKids(want))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no onChange within 5 s of the change (want kids %s)\nlogs:\n%s", rawKids(want), logs)
		}
	}
	quiet := func(d time.Duration) {
		t.Helper()
		select {
		case ks := <-changes:
			t.Fatalf("unexpected onChange with kids %s", kids(ks))
		case <-time.After(d):
		}
	}

	quiet(time.Second) // the initial list is the keyset Load read
	ks2 := newKeyset(t, 2)
	putSecret(t, admin, ns, name, ks2)
	expect(ks2)

	putSecret(t, admin, ns, name, []byte(`{"keys": [{"kid": "tampered"}]}`))
	quiet(2 * time.Second)
	if got := kids(src.Keyset()); got != rawKids(ks2) {
		t.Errorf("after an invalid secret the keyset is %s, want the last good one %s", got, rawKids(ks2))
	}
	if !strings.Contains(logs.String(), `"msg":"keyset secret invalid, keeping the last good keyset"`) {
		t.Errorf("the invalid secret was not logged as an error:\n%s", logs)
	}

	ks3 := newKeyset(t, 3)
	putSecret(t, admin, ns, name, ks3)
	expect(ks3)

	if err := admin.CoreV1().Secrets(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	quiet(time.Second)
	if got := kids(src.Keyset()); got != rawKids(ks3) {
		t.Errorf("after the secret was deleted the keyset is %s, want the last good one %s", got, rawKids(ks3))
	}
	putSecret(t, admin, ns, name, ks2)
	expect(ks2)
	if kids(first) == rawKids(ks2) {
		t.Error("test keysets are not distinct")
	}
}
