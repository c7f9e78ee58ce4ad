package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/keysource"
	"github.com/ideapool/ideapool/internal/kubeclient"
	"github.com/ideapool/ideapool/internal/settings"
)

// keySource is where serve's keyset lives: a file the server rotates
// itself, or a Kubernetes Secret the operator rotates and the server only
// reads.
type keySource interface {
	Load(ctx context.Context) (keyset.Keyset, error)
	Run(ctx context.Context, onChange func(keyset.Keyset)) error
}

var (
	_ keySource = (*keysource.File)(nil)
	_ keySource = (*keysource.Kubernetes)(nil)
)

// kubeConnection connects to the API server once, when --keys or --config
// first needs it.
type kubeConnection struct {
	once   sync.Once
	client kubernetes.Interface
	err    error
}

func (k *kubeConnection) get() (kubernetes.Interface, error) {
	k.once.Do(func() { k.client, k.err = kubeclient.NewClientset() })
	return k.client, k.err
}

// openKeySource picks the source --keys names.
func openKeySource(cfg *serveConfig, policy keyset.Policy, kube *kubeConnection, log *slog.Logger) (keySource, error) {
	kind, location, err := keysource.Parse(cfg.keys)
	if err != nil {
		return nil, fmt.Errorf("--keys: %w", err)
	}
	if kind == keysource.KindFile {
		return keysource.NewFile(location, policy, keyset.NewGenerator(rand.Reader), time.Now, log), nil
	}
	client, err := kube.get()
	if err != nil {
		return nil, fmt.Errorf("--keys %s: %w", cfg.keys, err)
	}
	ns, name := keysource.SplitName(location)
	return keysource.NewKubernetes(client, ns, name, log), nil
}

// openSettings loads --config (when set) over the flags' lifetimes and
// returns the function that keeps applying its changes to acct; with no
// --config it returns nil.
func openSettings(ctx context.Context, cfg *serveConfig, kube *kubeConnection, acct *accounts.Service, log *slog.Logger) (run func(context.Context) error, err error) {
	if cfg.config == "" {
		return nil, nil
	}
	kind, location, err := settings.Parse(cfg.config)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var src settings.Source
	if kind == settings.KindFile {
		src = settings.NewFile(location, log)
	} else {
		client, err := kube.get()
		if err != nil {
			return nil, fmt.Errorf("--config %s: %w", cfg.config, err)
		}
		ns, name, _ := strings.Cut(location, "/")
		src = settings.NewConfigMap(client, ns, name, log)
	}
	base := settings.Settings{AccessTokenTTL: cfg.accessTTL, RefreshTokenTTL: cfg.refreshTTL,
		IDTokenTTL: cfg.idTTL, RefreshReuseGrace: cfg.reuseGrace, JWKSMaxAge: cfg.jwksMaxAge}
	w := settings.NewWatcher(src, base, func(s settings.Settings) error {
		return acct.SetLifetimes(accounts.Lifetimes{Access: s.AccessTokenTTL, Refresh: s.RefreshTokenTTL,
			ID: s.IDTokenTTL, ReuseGrace: s.RefreshReuseGrace})
	}, log)
	if _, err := w.Load(ctx); err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return w.Run, nil
}
