package e2e_test

// The Helm chart (charts/ideapool), the kustomize manifests (config/) and the
// image's binary, checked with the real tools: Helm 3 and 4 built by
// hack/helm.sh (IDEAPOOL_HELM3, IDEAPOOL_HELM4), and the kube-apiserver of
// the operator tests (envtest), with `ideapool operator` as a local process
// reconciling what the chart created.

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

const chartDir = "charts/ideapool"

// helmBinaries are the pinned Helm majors the chart is tested with.
func helmBinaries(t *testing.T) map[string]string {
	t.Helper()
	bins := map[string]string{}
	for _, major := range []string{"3", "4"} {
		env := "IDEAPOOL_HELM" + major
		p := os.Getenv(env)
		if p == "" {
			t.Fatalf("%s is not set: run `make test`, or `%s=$(hack/helm.sh %s) go test ./e2e/` (it builds the pinned Helm %s once, then caches it)",
				env, env, major, major)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", env, p, err)
		}
		bins["helm"+major] = p
	}
	return bins
}

// runTool runs a command in the module root and returns its stdout; stderr
// goes into the error.
func runTool(env []string, stdin string, name string, args ...string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	cmd.Env = append(cleanEnv(), env...)
	cmd.Env = append(cmd.Env, "HELM_CACHE_HOME="+filepath.Join(os.TempDir(), "ideapool-helm-test", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(os.TempDir(), "ideapool-helm-test", "config"),
		"HELM_DATA_HOME="+filepath.Join(os.TempDir(), "ideapool-helm-test", "data"))
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// ciValues are the chart's ci/*-values.yaml files, relative to the module
// root, after "" (the defaults).
func ciValues(t *testing.T) []string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("want the chart's ci/*-values.yaml (sqlite, postgres, two replicas, crds off), found %v (%v)", files, err)
	}
	out := []string{""}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		out = append(out, rel)
	}
	return out
}

// object is one rendered manifest.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }

func (o object) meta(field string) map[string]string {
	m, _ := o["metadata"].(map[string]any)
	raw, _ := m[field].(map[string]any)
	out := map[string]string{}
	for k, v := range raw {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func (o object) name() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

// get walks nested maps: get("spec", "selector", "matchLabels").
func (o object) get(path ...string) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func parseManifests(t *testing.T, manifest string) []object {
	t.Helper()
	dec := k8syaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var objs []object
	for {
		var o object
		if err := dec.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("rendered manifests are not YAML: %v", err)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
}

func find(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// helmTemplate renders the chart offline.
func helmTemplate(t *testing.T, helm, valuesFile string, args ...string) []object {
	t.Helper()
	all := []string{"template", "ideapool", chartDir, "--namespace", "ideapool-system"}
	if valuesFile != "" {
		all = append(all, "-f", valuesFile)
	}
	out, err := runTool(nil, "", helm, append(all, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return parseManifests(t, out)
}

func TestHelmLintAndTemplate(t *testing.T) {
	bins := helmBinaries(t)
	standard := []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
		"app.kubernetes.io/managed-by", "helm.sh/chart"}
	for _, helm := range []string{"helm3", "helm4"} {
		for _, values := range ciValues(t) {
			name := helm + "/" + baseOr(values, "defaults")
			t.Run(name, func(t *testing.T) {
				args := []string{"lint", "--strict", chartDir}
				if values != "" {
					args = append(args, "-f", values)
				}
				if out, err := runTool(nil, "", bins[helm], args...); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				objs := helmTemplate(t, bins[helm], values)
				for _, o := range objs {
					labels := o.meta("labels")
					for _, l := range standard {
						if labels[l] == "" {
							t.Errorf("%s %s lacks the standard label %s: %v", o.kind(), o.name(), l, labels)
						}
					}
					if o.kind() != "CustomResourceDefinition" && o.kind() != "ClusterRole" && o.kind() != "ClusterRoleBinding" {
						if ns, _ := o.get("metadata", "namespace").(string); ns == "" {
							t.Errorf("%s %s has no metadata.namespace", o.kind(), o.name())
						}
					}
				}
				deps := find(objs, "Deployment")
				if len(deps) != 1 {
					t.Fatalf("want one operator Deployment, got %d", len(deps))
				}
				sel, _ := deps[0].get("spec", "selector", "matchLabels").(map[string]any)
				if keys := sortedKeys(sel); !slices.Equal(keys, []string{"app.kubernetes.io/instance", "app.kubernetes.io/name"}) {
					t.Errorf("the operator's selector labels are %v, want only name and instance", keys)
				}
				if sel["app.kubernetes.io/name"] == "ideapool" {
					t.Errorf("the operator's selector name is %q: the IdeasApp's pods (name=ideapool) would match it", sel["app.kubernetes.io/name"])
				}
				args2, _ := json.Marshal(deps[0].get("spec", "template", "spec", "containers"))
				if !strings.Contains(string(args2), "--leader-elect=true") {
					t.Errorf("the operator runs without --leader-elect=true: %s", args2)
				}
				crds := find(objs, "CustomResourceDefinition")
				if strings.Contains(values, "crds-off") {
					if len(crds) != 0 {
						t.Errorf("crds.enabled=false still renders %d CRD(s)", len(crds))
					}
				} else if len(crds) != 1 || crds[0].meta("annotations")["helm.sh/resource-policy"] != "keep" {
					t.Errorf("want the IdeasApp CRD with helm.sh/resource-policy: keep (crds.keep defaults to true), got %d CRD(s)", len(crds))
				}
				if apps := find(objs, "IdeasApp"); len(apps) != 1 {
					t.Errorf("want one IdeasApp (app.enabled defaults to true), got %d", len(apps))
				}
				if strings.Contains(values, "two-replicas") {
					if r := deps[0].get("spec", "replicas"); fmt.Sprint(r) != "2" {
						t.Errorf("replicas %v, want 2", r)
					}
				}
			})
		}
	}

	t.Run("keep off, app off, watchNamespace", func(t *testing.T) {
		objs := helmTemplate(t, bins["helm3"], "", "--set", "crds.keep=false,app.enabled=false,operator.watchNamespace=team-a")
		crds := find(objs, "CustomResourceDefinition")
		if len(crds) != 1 || crds[0].meta("annotations")["helm.sh/resource-policy"] != "" {
			t.Errorf("crds.keep=false: want the CRD without helm.sh/resource-policy")
		}
		if n := len(find(objs, "IdeasApp")); n != 0 {
			t.Errorf("app.enabled=false still renders %d IdeasApp(s)", n)
		}
		if n := len(find(objs, "ClusterRole")); n != 0 {
			t.Errorf("with operator.watchNamespace the operator needs no ClusterRole, got %d", n)
		}
		var inTeam int
		for _, r := range find(objs, "Role") {
			if r.get("metadata", "namespace") == "team-a" {
				inTeam++
			}
		}
		if inTeam != 1 {
			t.Errorf("want the operator's Role in the watched namespace team-a, got %d", inTeam)
		}
	})

	t.Run("names are at most 63 characters", func(t *testing.T) {
		// Helm allows release names of 53 characters; the chart adds suffixes.
		long := strings.Repeat("a", 53)
		out, err := runTool(nil, "", bins["helm3"], "template", long, chartDir, "--set", "nameOverride="+strings.Repeat("n", 20))
		if err != nil {
			t.Fatal(err)
		}
		objs := parseManifests(t, out)
		for _, o := range objs {
			if o.kind() != "CustomResourceDefinition" && len(o.name()) > 63 {
				t.Errorf("%s name %q is %d characters", o.kind(), o.name(), len(o.name()))
			}
		}
		// The operator names the IdeasApp's own Deployment and
		// ServiceAccount after the IdeasApp: the chart's must never be
		// called the same, however the names are cut.
		apps := find(objs, "IdeasApp")
		if len(apps) != 1 {
			t.Fatalf("want one IdeasApp, got %d", len(apps))
		}
		for _, kind := range []string{"Deployment", "ServiceAccount"} {
			for _, o := range find(objs, kind) {
				if o.name() == apps[0].name() {
					t.Errorf("the chart's %s is named %q, as the IdeasApp whose own %s the operator makes", kind, o.name(), kind)
				}
			}
		}
	})

	t.Run("the helm test pod is no endpoint of the app's Service", func(t *testing.T) {
		// The default release name gives the IdeasApp the release's name,
		// which is the instance label the app's Service selects.
		objs := helmTemplate(t, bins["helm4"], "")
		for _, o := range objs {
			if o.kind() != "Pod" {
				continue
			}
			l := o.meta("labels")
			if l["app.kubernetes.io/name"] == "ideapool" && l["app.kubernetes.io/instance"] == "ideapool" {
				t.Errorf("the test pod %s matches the app Service's selector name=ideapool,instance=ideapool: %v", o.name(), l)
			}
		}
	})
}

func baseOr(s, def string) string {
	if s == "" {
		return def
	}
	return filepath.Base(s)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestHelmSchemaRejectsBadValues(t *testing.T) {
	bins := helmBinaries(t)
	cases := map[string]struct {
		set  string // --set argument
		want string // in the error
	}{
		"unknown top-level key":      {set: "replicaCout=2", want: "replicaCout"},
		"unknown nested key":         {set: "crds.keepp=true", want: "keepp"},
		"unknown key in app.spec":    {set: "app.spec.tokens.accessTTL=5m", want: "accessTTL"},
		"wrong type":                 {set: "replicaCount=two", want: "replicaCount"},
		"wrong type of a boolean":    {set: "crds.enabled=maybe", want: "enabled"},
		"value outside the enum":     {set: "app.spec.signingKeys.algorithm=HS256", want: "algorithm"},
		"duration that is not one":   {set: "app.spec.tokens.accessTokenTTL=ten", want: "accessTokenTTL"},
		"unknown key in the image":   {set: "image.digest=sha256:0", want: "digest"},
		"wrong type in a nested map": {set: "metrics.port=https", want: "port"},
	}
	for _, helm := range []string{"helm3", "helm4"} {
		for name, tc := range cases {
			t.Run(helm+"/"+name, func(t *testing.T) {
				out, err := runTool(nil, "", bins[helm], "template", "ideapool", chartDir, "--set", tc.set)
				if err == nil {
					t.Fatalf("--set %s was accepted; values.schema.json must refuse it\n%.300s", tc.set, out)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("--set %s: the error does not name %q: %v", tc.set, tc.want, err)
				}
			})
		}
	}
}

// readYAML decodes one YAML document of the module.
func readYAML(t *testing.T, rel string) object {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	objs := parseManifests(t, string(b))
	if len(objs) != 1 {
		t.Fatalf("%s: want one document, got %d", rel, len(objs))
	}
	return objs[0]
}

func TestChartCRDIsTheGeneratedOne(t *testing.T) {
	bins := helmBinaries(t)
	generated := readYAML(t, "config/crd/bases/ideapool.dev_ideasapps.yaml")
	for _, helm := range []string{"helm3", "helm4"} {
		crds := find(helmTemplate(t, bins[helm], ""), "CustomResourceDefinition")
		if len(crds) != 1 {
			t.Fatalf("%s: want one CRD, got %d", helm, len(crds))
		}
		crd := crds[0]
		if crd.name() != generated.name() || !reflect.DeepEqual(crd["spec"], generated["spec"]) {
			t.Fatalf("%s: the chart's CRD differs from config/crd/bases/ideapool.dev_ideasapps.yaml: run `make manifests chart-crd`", helm)
		}
		ann := crd.meta("annotations")
		for k, v := range generated.meta("annotations") {
			if ann[k] != v {
				t.Errorf("%s: the chart's CRD annotation %s=%q, generated %q: run `make chart-crd`", helm, k, ann[k], v)
			}
		}
	}
}

// ruleSet flattens RBAC rules to "group/resource:verb" (and resourceNames).
func ruleSet(rules any) map[string]bool {
	set := map[string]bool{}
	list, _ := rules.([]any)
	for _, r := range list {
		rule, _ := r.(map[string]any)
		strs := func(k string) []string {
			var out []string
			l, _ := rule[k].([]any)
			for _, v := range l {
				out = append(out, fmt.Sprint(v))
			}
			return out
		}
		names := strings.Join(strs("resourceNames"), ",")
		for _, g := range strs("apiGroups") {
			for _, res := range strs("resources") {
				for _, v := range strs("verbs") {
					set[fmt.Sprintf("%s/%s[%s]:%s", g, res, names, v)] = true
				}
			}
		}
	}
	return set
}

func TestChartRBACIsTheGeneratedRole(t *testing.T) {
	bins := helmBinaries(t)
	generated := ruleSet(readYAML(t, "config/rbac/role.yaml")["rules"])
	objs := helmTemplate(t, bins["helm3"], "")
	roles := find(objs, "ClusterRole")
	if len(roles) != 1 {
		t.Fatalf("want one ClusterRole, got %d", len(roles))
	}
	got := ruleSet(roles[0]["rules"])
	var leaderElection map[string]bool
	for _, r := range find(objs, "Role") {
		if strings.HasSuffix(r.name(), "-leader-election") {
			leaderElection = ruleSet(r["rules"])
		}
	}
	if leaderElection == nil {
		t.Fatal("no leader-election Role")
	}
	// Leases are granted in the release namespace only, by the
	// leader-election Role; everything else is the generated ClusterRole.
	for rule := range generated {
		isLease := strings.HasPrefix(rule, "coordination.k8s.io/leases")
		switch {
		case isLease && !leaderElection[rule]:
			t.Errorf("the leader-election Role lacks %s of config/rbac/role.yaml", rule)
		case !isLease && !got[rule]:
			t.Errorf("the chart's ClusterRole lacks %s of config/rbac/role.yaml (regenerated: update templates/_helpers.tpl)", rule)
		}
	}
	for rule := range got {
		if !generated[rule] {
			t.Errorf("the chart's ClusterRole grants %s, which config/rbac/role.yaml does not: least privilege", rule)
		}
		if strings.HasPrefix(rule, "coordination.k8s.io/") {
			t.Errorf("the chart's ClusterRole grants %s cluster-wide; leases belong to the leader-election Role", rule)
		}
	}
}

// TestImageBinaryIsStatic builds the binary as the Dockerfile does and
// checks what the distroless image needs: no dynamic loader, no libc, the
// version stamped in.
func TestImageBinaryIsStatic(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	const flags = `CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}"`
	for _, want := range []string{flags, "kubectl-ideapool", "distroless/static", "nonroot", "ENTRYPOINT"} {
		if !bytes.Contains(dockerfile, []byte(want)) {
			t.Errorf("the Dockerfile lacks %q: this test builds the binary that way", want)
		}
	}

	const version = "v0.0.0-imagetest"
	bin := filepath.Join(t.TempDir(), "ideapool")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", bin, ".")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("the binary is not ELF: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %s program header: it is dynamically linked and would not run on distroless/static", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("the binary has a symbol table: -s was not applied")
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "ideapool "+version {
		t.Errorf("ideapool version printed %q (%v), want %q", out, err, "ideapool "+version)
	}
	// kubectl-ideapool is the same binary under the plugin's name.
	plugin := filepath.Join(filepath.Dir(bin), "kubectl-ideapool")
	if err := os.Link(bin, plugin); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.Command(plugin, "--help").CombinedOutput()
	if !strings.Contains(string(out), "kubectl ideapool") {
		t.Errorf("the binary run as kubectl-ideapool does not act as the plugin: %s", out)
	}
}

// startBareCluster is an envtest API server without any CRD: the chart
// installs it.
func startBareCluster(t *testing.T) *cluster {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or `KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test ./e2e/`")
	}
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stop envtest: %v", err)
		}
	})
	user, err := env.AddUser(envtest.User{Name: "helm-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{dir: t.TempDir(), assets: assets, rawConfig: raw,
		client: kubernetes.NewForConfigOrDie(cfg), dynamic: dynamic.NewForConfigOrDie(cfg)}
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := os.WriteFile(c.kubeconfig, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// chartTools are the helpers of the chart tests on cluster c: helm runs a
// Helm major against it; waitChildren waits for the operator's children of
// IdeasApp ns/name, with wantTTL as the access token lifetime in its
// ConfigMap; crdExists tells whether the IdeasApp CRD is there.
func chartTools(c *cluster, bins map[string]string) (
	helm func(t *testing.T, major string, args ...string) string,
	waitChildren func(t *testing.T, ns, name, wantTTL string),
	crdExists func() bool,
) {
	kenv := []string{"KUBECONFIG=" + c.kubeconfig}
	helm = func(t *testing.T, major string, args ...string) string {
		t.Helper()
		out, err := runTool(kenv, "", bins[major], args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	ctx := context.Background()
	// waitChildren waits for the operator's children of IdeasApp ns/name and
	// returns the access token lifetime in its ConfigMap once it is want.
	waitChildren = func(t *testing.T, ns, name, wantTTL string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, errS := c.client.CoreV1().Secrets(ns).Get(ctx, name+"-keyset", metav1.GetOptions{})
			cm, errC := c.client.CoreV1().ConfigMaps(ns).Get(ctx, name+"-config", metav1.GetOptions{})
			_, errD := c.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			_, errV := c.client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
			var ttl string
			if errC == nil {
				for k, v := range cm.Data {
					if strings.Contains(strings.ToLower(k), "access") {
						ttl = v
					}
				}
			}
			if errS == nil && errC == nil && errD == nil && errV == nil && ttl == wantTTL {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("IdeasApp %s/%s: within 30 s the operator did not create the Secret %s-keyset (%v), the ConfigMap %s-config (%v) with access token lifetime %s (has %q), the Deployment (%v) and the Service (%v)",
					ns, name, name, errS, name, errC, wantTTL, ttl, errD, errV)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	crdExists = func() bool {
		_, err := c.dynamic.Resource(crdGVR).Get(ctx, "ideasapps.ideapool.dev", metav1.GetOptions{})
		return err == nil
	}

	return helm, waitChildren, crdExists
}

// TestChartAndKustomizeOnAPIServer installs, upgrades and uninstalls the
// chart with both Helm majors on one real API server, with the operator
// reconciling what the chart created.
func TestChartAndKustomizeOnAPIServer(t *testing.T) {
	bins := helmBinaries(t)
	start := time.Now()
	c := startBareCluster(t)
	kubectl := filepath.Join(c.assets, "kubectl")
	kenv := []string{"KUBECONFIG=" + c.kubeconfig}
	ctx := context.Background()
	helm, waitChildren, crdExists := chartTools(c, bins)
	nsFor := func(t *testing.T, ns string) {
		t.Helper()
		_, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}

	// Helm 4 on a cluster that has never seen the CRD: the chart creates it
	// and, after it, the IdeasApp.
	const ns4, rel4 = "ideapool-system", "ideapool"
	t.Run("helm4 install on a fresh cluster", func(t *testing.T) {
		helm(t, "helm4", "install", rel4, chartDir, "--namespace", ns4, "--create-namespace")
		if !crdExists() {
			t.Fatal("helm install did not create the IdeasApp CRD")
		}
		if _, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns4).Get(ctx, rel4, metav1.GetOptions{}); err != nil {
			t.Fatalf("helm install did not create the IdeasApp %s: %v", rel4, err)
		}
	})

	t.Run("rendered manifests pass server-side dry-run", func(t *testing.T) {
		const ns = "dry-run"
		nsFor(t, ns)
		for _, values := range ciValues(t) {
			for _, major := range []string{"helm3", "helm4"} {
				args := []string{"template", "dry", chartDir, "--namespace", ns, "--kube-version", "1.37.2"}
				if values != "" {
					args = append(args, "-f", values)
				}
				manifest := helm(t, major, args...)
				if out, err := runTool(kenv, manifest, kubectl, "apply", "--dry-run=server", "-n", ns, "-f", "-"); err != nil {
					t.Errorf("%s %s: %v\n%s", major, baseOr(values, "defaults"), err, out)
				}
			}
		}
	})

	t.Run("kustomize config/default passes server-side dry-run", func(t *testing.T) {
		// Server-side dry-run does not create the Namespace it lists, and
		// the objects in it need one.
		nsFor(t, "ideapool-system")
		out, err := runTool(kenv, "", kubectl, "apply", "-k", "config/default", "--dry-run=server")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, want := range []string{"customresourcedefinition", "deployment.apps/ideapool-operator", "clusterrole"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl apply -k config/default --dry-run=server did not list %s:\n%s", want, out)
			}
		}
	})

	c.startOperator(t)

	t.Run("the operator reconciles the chart's IdeasApp", func(t *testing.T) {
		waitChildren(t, ns4, rel4, "10m0s")
	})

	t.Run("helm4 upgrade changes the token lifetimes", func(t *testing.T) {
		helm(t, "helm4", "upgrade", rel4, chartDir, "--namespace", ns4, "--set", "app.spec.tokens.accessTokenTTL=3m")
		waitChildren(t, ns4, rel4, "3m0s")
	})

	// Revision 1 made the IdeasApp in a hook, so its manifest lacks it:
	// rolling back to it must not delete the app with its keys and data.
	t.Run("helm4 rollback to the first revision keeps the IdeasApp", func(t *testing.T) {
		helm(t, "helm4", "rollback", rel4, "1", "--namespace", ns4)
		if _, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns4).Get(ctx, rel4, metav1.GetOptions{}); err != nil {
			t.Fatalf("after helm rollback %s 1 the IdeasApp is gone (app.keep defaults to true): %v", rel4, err)
		}
		helm(t, "helm4", "upgrade", rel4, chartDir, "--namespace", ns4, "--set", "app.spec.tokens.accessTokenTTL=3m")
		waitChildren(t, ns4, rel4, "3m0s")
	})

	// Helm 3 on a cluster that already has the CRD (crds.enabled=false:
	// the CRD belongs to the other release).
	const ns3, rel3 = "team-three", "pool3"
	app3 := rel3 + "-ideapool"
	t.Run("helm3 install and upgrade", func(t *testing.T) {
		helm(t, "helm3", "install", rel3, chartDir, "--namespace", ns3, "--create-namespace", "--set", "crds.enabled=false")
		waitChildren(t, ns3, app3, "10m0s")
		helm(t, "helm3", "upgrade", rel3, chartDir, "--namespace", ns3, "--set", "crds.enabled=false",
			"--set", "app.spec.tokens.accessTokenTTL=7m")
		waitChildren(t, ns3, app3, "7m0s")
	})

	t.Run("helm uninstall keeps the CRD and the IdeasApp", func(t *testing.T) {
		out := helm(t, "helm4", "uninstall", rel4, "--namespace", ns4)
		if !crdExists() {
			t.Fatalf("after helm uninstall with crds.keep=true the CRD is gone:\n%s", out)
		}
		if _, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns4).Get(ctx, rel4, metav1.GetOptions{}); err != nil {
			t.Errorf("after helm uninstall with app.keep=true the IdeasApp is gone: %v", err)
		}
		if _, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns3).Get(ctx, app3, metav1.GetOptions{}); err != nil {
			t.Errorf("after uninstalling one release, the other release's IdeasApp is gone: %v", err)
		}
		helm(t, "helm3", "uninstall", rel3, "--namespace", ns3)
	})

	// Helm 3's install adopts an existing object without patching it (its
	// original is taken to be the new manifest) unless told
	// --take-ownership, which merges three ways against the live object,
	// as the README says.
	t.Run("helm3 reinstall adopts the kept CRD and IdeasApp and upgrades", func(t *testing.T) {
		helm(t, "helm3", "install", rel4, chartDir, "--namespace", ns4, "--take-ownership", "--set", "app.spec.tokens.accessTokenTTL=4m")
		waitChildren(t, ns4, rel4, "4m0s")
		helm(t, "helm3", "upgrade", rel4, chartDir, "--namespace", ns4, "--set", "app.spec.tokens.accessTokenTTL=5m")
		waitChildren(t, ns4, rel4, "5m0s")
	})

	// Helm 3 on a cluster without the CRD (a second API server): the
	// IdeasApp comes from the post-install hook, and the first upgrade
	// adopts it. Helm 3's upgrade adopts without patching (even with
	// --take-ownership, which only its install merges against the live
	// object), so that one upgrade takes --force, as the README says.
	t.Run("helm3 on a fresh cluster: the first upgrade applies with --force", func(t *testing.T) {
		fresh := startBareCluster(t)
		fresh.startOperator(t)
		helm3, waitFresh, _ := chartTools(fresh, bins)
		const rel = "fresh3"
		notes := helm3(t, "helm3", "install", rel, chartDir, "--namespace", ns4, "--create-namespace")
		if !strings.Contains(notes, "pass --force to your first `helm upgrade`") {
			t.Errorf("the NOTES of a Helm 3 install on a fresh cluster do not say to pass --force to the first upgrade:\n%s", notes)
		}
		app := rel + "-ideapool"
		waitFresh(t, ns4, app, "10m0s")
		helm3(t, "helm3", "upgrade", rel, chartDir, "--namespace", ns4, "--force", "--set", "app.spec.tokens.accessTokenTTL=6m")
		waitFresh(t, ns4, app, "6m0s")
		helm3(t, "helm3", "upgrade", rel, chartDir, "--namespace", ns4, "--set", "app.spec.tokens.accessTokenTTL=8m")
		waitFresh(t, ns4, app, "8m0s")
	})
	t.Logf("chart on the API server: %s", time.Since(start).Round(100*time.Millisecond))
}
