package settings

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ideapool/ideapool/internal/kubeclient"
)

// Defaults of a ConfigMap source.
const (
	DefaultLoadTimeout  = 60 * time.Second
	DefaultLoadInterval = 500 * time.Millisecond
)

// ConfigMap reads settings from the data of a ConfigMap the operator writes,
// and watches it.
type ConfigMap struct {
	client    kubernetes.Interface
	namespace string
	name      string
	log       *slog.Logger

	// LoadTimeout bounds how long Load waits for the ConfigMap to exist.
	// Default DefaultLoadTimeout; set before Load.
	LoadTimeout time.Duration
}

var _ Source = (*ConfigMap)(nil)

// NewConfigMap returns a source for the ConfigMap namespace/name; log may
// be nil.
func NewConfigMap(client kubernetes.Interface, namespace, name string, log *slog.Logger) *ConfigMap {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ConfigMap{client: client, namespace: namespace, name: name, log: log, LoadTimeout: DefaultLoadTimeout}
}

// String names the ConfigMap: "kubernetes:NAMESPACE/NAME".
func (c *ConfigMap) String() string { return KindKubernetes + ":" + c.namespace + "/" + c.name }

// Load returns the ConfigMap's data, waiting up to LoadTimeout for it to
// exist (the operator creates it with the server's Deployment).
func (c *ConfigMap) Load(ctx context.Context) (map[string]string, error) {
	timeout := c.LoadTimeout
	if timeout <= 0 {
		timeout = DefaultLoadTimeout
	}
	var data map[string]string
	err := kubeclient.Wait(ctx, timeout, DefaultLoadInterval, func(ctx context.Context) error {
		cm, err := c.client.CoreV1().ConfigMaps(c.namespace).Get(ctx, c.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("configmap %s/%s not found (the operator creates it)", c.namespace, c.name)
		case err != nil:
			return fmt.Errorf("get configmap %s/%s: %w", c.namespace, c.name, err)
		}
		data = cm.Data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load settings from %s: %w", c, err)
	}
	return data, nil
}

// Run watches the ConfigMap until ctx ends and calls onChange with its data
// whenever that changes. A deleted ConfigMap is logged; the settings in
// force stay.
func (c *ConfigMap) Run(ctx context.Context, onChange func(map[string]string)) error {
	var last map[string]string
	seen := false
	return kubeclient.WatchConfigMap(ctx, c.client, c.namespace, c.name, func(cm *corev1.ConfigMap) {
		if cm == nil {
			c.log.Error("settings configmap deleted, keeping the previous settings", "source", c.String())
			return
		}
		if seen && maps.Equal(cm.Data, last) {
			return
		}
		seen, last = true, maps.Clone(cm.Data)
		onChange(cm.Data)
	})
}
