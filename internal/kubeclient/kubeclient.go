// Package kubeclient connects ideapool to the Kubernetes API: the client
// configuration (in-cluster, or a kubeconfig outside a cluster) and a watch
// of one named object, which is all a pod whose Role names its objects may
// do.
package kubeclient

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// Loader returns the client configuration the way kubectl finds it:
// kubeconfig (a path; empty means $KUBECONFIG, then ~/.kube/config) and
// context (empty means the current one). With no kubeconfig at all, inside
// a pod, it falls back to the in-cluster service account.
func Loader(kubeconfig, context string) clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// RESTConfig is the configuration of Loader("", ""), with ideapool's user
// agent.
func RESTConfig() (*rest.Config, error) {
	cfg, err := Loader("", "").ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration (in-cluster, $KUBECONFIG or ~/.kube/config): %w", err)
	}
	cfg.UserAgent = "ideapool"
	return cfg, nil
}

// NewClientset connects with RESTConfig.
func NewClientset() (kubernetes.Interface, error) {
	cfg, err := RESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, nil
}

// WatchSecret calls onChange with the Secret namespace/name each time it is
// created or changed (and once for the current one), and with nil when it
// is deleted, until ctx ends. Calls are sequential. It lists and watches
// with the field selector metadata.name=NAME in the namespace only, which a
// Role restricted by resourceNames allows.
func WatchSecret(ctx context.Context, client kubernetes.Interface, namespace, name string, onChange func(*corev1.Secret)) error {
	f := factory(client, namespace, name)
	return watchOne(ctx, f, f.Core().V1().Secrets().Informer(), func(obj any) {
		s, _ := obj.(*corev1.Secret)
		onChange(s)
	})
}

// WatchConfigMap is WatchSecret for a ConfigMap.
func WatchConfigMap(ctx context.Context, client kubernetes.Interface, namespace, name string, onChange func(*corev1.ConfigMap)) error {
	f := factory(client, namespace, name)
	return watchOne(ctx, f, f.Core().V1().ConfigMaps().Informer(), func(obj any) {
		cm, _ := obj.(*corev1.ConfigMap)
		onChange(cm)
	})
}

func factory(client kubernetes.Interface, namespace, name string) informers.SharedInformerFactory {
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	return informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
}

// watchOne runs inf until ctx ends; onChange gets the object, or nil once
// it is deleted.
func watchOne(ctx context.Context, f informers.SharedInformerFactory, inf cache.SharedIndexInformer, onChange func(any)) error {
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { onChange(obj) },
		UpdateFunc: func(_, obj any) { onChange(obj) },
		DeleteFunc: func(any) { onChange(nil) },
	})
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	f.StartWithContext(ctx)
	defer f.Shutdown()
	<-ctx.Done()
	return nil
}

// Wait calls try every interval until it succeeds, ctx ends or timeout
// passes, and then returns try's last error, saying how long it waited.
func Wait(ctx context.Context, timeout, interval time.Duration, try func(context.Context) error) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			}
			return fmt.Errorf("gave up after %s: %w", timeout, err)
		case <-t.C:
		}
	}
}
