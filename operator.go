package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/controllers"
	"github.com/ideapool/ideapool/internal/keyset"
)

// operatorConfig is the command line of `ideapool operator`.
type operatorConfig struct {
	metricsAddr     string
	metricsSecure   bool
	probeAddr       string
	leaderElect     bool
	leaderNS        string
	appImage        string
	watchNamespaces string
	watchNamespace  string // the deprecated --watch-namespace
	logLevel        string
	concurrency     int
	appTemplate     string
}

func (c *operatorConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.metricsAddr, "metrics-bind-address", ":8443",
		"address of the operator's Prometheus /metrics (ideapool_* key metrics and controller-runtime's); "+
			"kubebuilder's convention: :8443 with HTTPS, :8080 with --metrics-secure=false, 0 disables")
	fs.BoolVar(&c.metricsSecure, "metrics-secure", true,
		"serve metrics over HTTPS with a self-signed certificate (curl -k https://localhost:8443/metrics); false serves plain HTTP")
	fs.StringVar(&c.probeAddr, "health-probe-bind-address", ":8081",
		"address of the /healthz and /readyz probe endpoints")
	fs.BoolVar(&c.leaderElect, "leader-elect", false,
		"elect a leader through a Lease so that only one operator replica reconciles (on in the in-cluster Deployment)")
	fs.StringVar(&c.leaderNS, "leader-election-namespace", "",
		"namespace of the leader-election Lease; empty means the operator's own (found in cluster; required with --leader-elect outside one)")
	fs.StringVar(&c.appImage, "app-image", "ghcr.io/ideapool/ideapool:"+version,
		"ideapool server image of IdeasApps that set no spec.image")
	fs.StringVar(&c.watchNamespaces, "watch-namespaces", "",
		"reconcile IdeasApps of these namespaces only (comma-separated, e.g. team-a,team-b), which lets the operator run "+
			"with namespaced Roles there instead of cluster-wide rights; empty watches every namespace")
	fs.StringVar(&c.watchNamespace, "watch-namespace", "",
		"deprecated alias of --watch-namespaces for one namespace (kept for existing installs; setting both is an error)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.IntVar(&c.concurrency, "max-concurrent-reconciles", 4,
		"IdeasApps reconciled at once (one IdeasApp is never reconciled twice at once); more shortens a rotation across many IdeasApps, each RSA key generation takes a core for a moment")
	fs.StringVar(&c.appTemplate, "app-template", "",
		"NAMESPACE/NAME of a ConfigMap holding a desired IdeasApp (data key "+controllers.AppTemplateKey+"), as the Helm chart renders "+
			"its app.* values: the operator server-side applies that IdeasApp in NAMESPACE whenever the ConfigMap changes (fields "+
			"taken out of it are removed, fields set by others stay) and never deletes it, unless the ConfigMap says "+
			controllers.AppTemplateKeepKey+": \"false\" (then it is deleted with the ConfigMap); empty: none")
}

// appTemplate is the ConfigMap of --app-template, empty if none; watched
// are the namespaces of --watch-namespaces (none: all).
func (c *operatorConfig) appTemplateName(watched []string) (types.NamespacedName, error) {
	if c.appTemplate == "" {
		return types.NamespacedName{}, nil
	}
	ns, name, ok := strings.Cut(c.appTemplate, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("--app-template: %q is not NAMESPACE/NAME", c.appTemplate)
	}
	errs := append(validation.IsDNS1123Label(ns), validation.IsDNS1123Subdomain(name)...)
	if len(errs) > 0 {
		return types.NamespacedName{}, fmt.Errorf("--app-template: %q: %s", c.appTemplate, strings.Join(errs, "; "))
	}
	if len(watched) > 0 && !slices.Contains(watched, ns) {
		return types.NamespacedName{}, fmt.Errorf("--app-template: the IdeasApp would be made in namespace %q, which --watch-namespaces=%s does not reconcile",
			ns, strings.Join(watched, ","))
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

func runOperator(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg operatorConfig
	fs := flag.NewFlagSet("operator", flag.ContinueOnError)
	cfg.register(fs)
	if err := parseFlags(fs, args, "Run the IdeasApp operator: it keeps every IdeasApp's server, storage and\n"+
		"signing keys in place and rotates the keys on schedule. It finds the cluster\n"+
		"through KUBECONFIG or its in-cluster service account.", stdout, stderr); err != nil {
		return err
	}
	if cfg.appImage == "" {
		return errors.New("--app-image: must not be empty")
	}
	if cfg.concurrency < 1 {
		return errors.New("--max-concurrent-reconciles: must be at least 1")
	}
	namespaces, err := cfg.namespaces()
	if err != nil {
		return err
	}
	template, err := cfg.appTemplateName(namespaces)
	if err != nil {
		return err
	}

	slogger, err := newLogger(stderr, cfg.logLevel)
	if err != nil {
		return err
	}
	log := logr.FromSlogHandler(slogger.Handler())
	ctrl.SetLogger(log)
	klog.SetLogger(log)

	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client config: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(namespaces),
		Metrics:                       metricsserver.Options{BindAddress: cfg.metricsAddr, SecureServing: cfg.metricsSecure},
		HealthProbeBindAddress:        cfg.probeAddr,
		LeaderElection:                cfg.leaderElect,
		LeaderElectionID:              "ideapool-operator.ideapool.dev",
		LeaderElectionNamespace:       cfg.leaderNS,
		LeaderElectionReleaseOnCancel: true,
		Logger:                        log,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	r := &controllers.IdeasAppReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Clock:     clock.RealClock{},
		Keys:      keyset.NewGenerator(rand.Reader),
		Recorder:  mgr.GetEventRecorder("ideapool-operator"),
		AppImage:  cfg.appImage,

		MaxConcurrentReconciles: cfg.concurrency,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up controller: %w", err)
	}
	if template.Name != "" {
		t := &controllers.AppTemplateReconciler{
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Template:  template,
			Recorder:  mgr.GetEventRecorder("ideapool-operator"),
		}
		if err := t.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up app template controller: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("starting operator", "version", version, "app_image", cfg.appImage,
		"watch_namespaces", namespaces, "leader_elect", cfg.leaderElect, "max_concurrent_reconciles", cfg.concurrency,
		"app_template", cfg.appTemplate)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

// namespaces is the list of --watch-namespaces (or the deprecated
// --watch-namespace): sorted, without duplicates, each a valid namespace
// name; empty means every namespace.
func (c *operatorConfig) namespaces() ([]string, error) {
	raw, flagName := c.watchNamespaces, "--watch-namespaces"
	if c.watchNamespace != "" {
		if c.watchNamespaces != "" && c.watchNamespaces != c.watchNamespace {
			return nil, errors.New("--watch-namespace: deprecated alias of --watch-namespaces; set only --watch-namespaces")
		}
		raw, flagName = c.watchNamespace, "--watch-namespace"
	}
	var out []string
	for _, ns := range strings.Split(raw, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("%s: %q is not a namespace name: %s", flagName, ns, strings.Join(errs, "; "))
		}
		out = append(out, ns)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
