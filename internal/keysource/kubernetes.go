package keysource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/kubeclient"
)

// SecretKey is the data key of the keyset document in the Secret.
const SecretKey = contract.KeysetDataKey

// Defaults of a Kubernetes source.
const (
	DefaultLoadTimeout  = 60 * time.Second
	DefaultLoadInterval = 500 * time.Millisecond
)

// Kubernetes reads the keyset from a Secret that the operator writes and
// rotates (data key keyset.json). It never writes: which key signs and which
// are published follows from the keyset's schedule and each replica's
// clock, so replicas agree without talking to each other.
type Kubernetes struct {
	client    kubernetes.Interface
	namespace string
	name      string
	log       *slog.Logger

	// LoadTimeout bounds how long Load waits for the Secret to exist and
	// hold a valid keyset. Default DefaultLoadTimeout; set before Load.
	LoadTimeout time.Duration

	mu      sync.Mutex
	current keyset.Keyset
	raw     []byte // the document current was parsed from; nil before the first
	lastBad string // resourceVersion of the last invalid Secret logged
}

// NewKubernetes returns a source for the Secret namespace/name; log may be
// nil.
func NewKubernetes(client kubernetes.Interface, namespace, name string, log *slog.Logger) *Kubernetes {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Kubernetes{client: client, namespace: namespace, name: name, log: log, LoadTimeout: DefaultLoadTimeout}
}

// String names the Secret: "kubernetes:NAMESPACE/NAME".
func (k *Kubernetes) String() string { return KindKubernetes + ":" + k.namespace + "/" + k.name }

// Keyset returns the last good keyset read.
func (k *Kubernetes) Keyset() keyset.Keyset {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.current
}

// Load reads the keyset, waiting up to LoadTimeout for the Secret to exist
// and hold a valid keyset (the operator creates it when the server's
// Deployment is created, so a new pod may start first).
func (k *Kubernetes) Load(ctx context.Context) (keyset.Keyset, error) {
	timeout := k.LoadTimeout
	if timeout <= 0 {
		timeout = DefaultLoadTimeout
	}
	var ks keyset.Keyset
	err := kubeclient.Wait(ctx, timeout, DefaultLoadInterval, func(ctx context.Context) error {
		s, err := k.client.CoreV1().Secrets(k.namespace).Get(ctx, k.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("secret %s/%s not found (the operator creates it)", k.namespace, k.name)
		case err != nil:
			return fmt.Errorf("get secret %s/%s: %w", k.namespace, k.name, err)
		}
		raw, parsed, err := k.parse(s)
		if err != nil {
			return err
		}
		ks = parsed
		k.mu.Lock()
		k.current, k.raw = parsed, raw
		k.mu.Unlock()
		return nil
	})
	if err != nil {
		return keyset.Keyset{}, fmt.Errorf("load keyset from %s: %w", k, err)
	}
	return ks, nil
}

// Run watches the Secret until ctx ends and calls onChange with every new
// keyset, within seconds of the change. If Load was not called first, Run
// loads and calls onChange with the initial keyset. An invalid or deleted
// Secret leaves the last good keyset in use and is logged as an error.
func (k *Kubernetes) Run(ctx context.Context, onChange func(keyset.Keyset)) error {
	k.mu.Lock()
	loaded := k.raw != nil
	k.mu.Unlock()
	if !loaded {
		ks, err := k.Load(ctx)
		if err != nil {
			return err
		}
		onChange(ks)
	}
	return kubeclient.WatchSecret(ctx, k.client, k.namespace, k.name, func(s *corev1.Secret) {
		if ks, ok := k.update(s); ok {
			onChange(ks)
		}
	})
}

// update takes a watched Secret and reports whether it holds a new valid
// keyset.
func (k *Kubernetes) update(s *corev1.Secret) (keyset.Keyset, bool) {
	if s == nil {
		k.log.Error("keyset secret deleted, keeping the last good keyset", "secret", k.String())
		return keyset.Keyset{}, false
	}
	raw, ks, err := k.parse(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		if k.lastBad != s.ResourceVersion {
			k.lastBad = s.ResourceVersion
			k.log.Error("keyset secret invalid, keeping the last good keyset", "secret", k.String(),
				"resource_version", s.ResourceVersion, "error", err)
		}
		return keyset.Keyset{}, false
	}
	if bytes.Equal(raw, k.raw) {
		return keyset.Keyset{}, false
	}
	k.current, k.raw = ks, raw
	k.log.Info("keyset reloaded from secret", "secret", k.String(), "resource_version", s.ResourceVersion, "keys", len(ks.Keys))
	return ks, true
}

// errNoKeyset means the Secret lacks the keyset.json data key.
var errNoKeyset = errors.New("no " + SecretKey + " data key")

func (k *Kubernetes) parse(s *corev1.Secret) ([]byte, keyset.Keyset, error) {
	raw, ok := s.Data[SecretKey]
	if !ok {
		return nil, keyset.Keyset{}, fmt.Errorf("secret %s/%s: %w", k.namespace, k.name, errNoKeyset)
	}
	ks, err := keyset.Parse(raw)
	if err != nil {
		return nil, keyset.Keyset{}, fmt.Errorf("secret %s/%s: %w", k.namespace, k.name, err)
	}
	if len(ks.Keys) == 0 {
		return nil, keyset.Keyset{}, fmt.Errorf("secret %s/%s: %w: no keys", k.namespace, k.name, keyset.ErrInvalid)
	}
	return raw, ks, nil
}
