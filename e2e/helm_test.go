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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
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
				if apps := find(objs, "IdeasApp"); len(apps) != 0 {
					t.Errorf("the chart renders %d IdeasApp(s): a release object would be deleted by uninstall and rollback", len(apps))
				}
				app, keep := templateApp(t, objs)
				if app.kind() != "IdeasApp" || app.get("metadata", "name") == nil || app.get("spec", "tokens", "accessTokenTTL") == nil || keep != "true" {
					t.Errorf("the app template holds %v (keep %q); want an IdeasApp with a name, the values' spec, and keep \"true\" (app.keep defaults to true)", app, keep)
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
		if n := len(appTemplates(objs)); n != 0 {
			t.Errorf("app.enabled=false still renders %d app template(s)", n)
		}
		if args := operatorArgs(t, objs); strings.Contains(args, "--app-template") {
			t.Errorf("app.enabled=false still passes --app-template: %s", args)
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

	t.Run("the operator applies the app template", func(t *testing.T) {
		cases := map[string]struct {
			set      string
			ns, keep string // of the template, and its keep
		}{
			"defaults":                              {ns: "ideapool-system", keep: "true"},
			"keep off":                              {set: "app.keep=false", ns: "ideapool-system", keep: "false"},
			"in the namespace the operator watches": {set: "operator.watchNamespace=team-a", ns: "team-a", keep: "true"},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				var args []string
				if tc.set != "" {
					args = []string{"--set", tc.set}
				}
				objs := helmTemplate(t, bins["helm4"], "", args...)
				cms := appTemplates(objs)
				if len(cms) != 1 {
					t.Fatalf("want one app template ConfigMap, got %d", len(cms))
				}
				ns, _ := cms[0].get("metadata", "namespace").(string)
				want := "--app-template=" + ns + "/" + cms[0].name()
				if got := operatorArgs(t, objs); ns != tc.ns || !strings.Contains(got, want) {
					t.Errorf("app template %s/%s; the operator's args %s; want it in %s and %s", ns, cms[0].name(), got, tc.ns, want)
				}
				if _, keep := templateApp(t, objs); keep != tc.keep {
					t.Errorf("keep %q, want %q", keep, tc.keep)
				}
			})
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
		app, _ := templateApp(t, objs)
		for _, kind := range []string{"Deployment", "ServiceAccount"} {
			for _, o := range find(objs, kind) {
				if o.name() == app.name() {
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

	t.Run("the helm test pod runs the operator's image", func(t *testing.T) {
		// No other image to pull (air-gapped clusters, private registries),
		// and no shell or busybox wget: `ideapool verify-load --check`.
		for _, args := range [][]string{nil, {"--set", "image.repository=registry.example/ip", "--set", "image.tag=9.9.9"}} {
			objs := helmTemplate(t, bins["helm4"], "", args...)
			op := find(objs, "Deployment")[0].get("spec", "template", "spec", "containers").([]any)[0].(map[string]any)
			for _, p := range find(objs, "Pod") {
				c := p.get("spec", "containers").([]any)[0].(map[string]any)
				if c["image"] != op["image"] {
					t.Errorf("%v: the test pod runs %v, the operator %v", args, c["image"], op["image"])
				}
				if a := fmt.Sprint(c["args"]); !strings.HasPrefix(a, "[verify-load --check ") || c["command"] != nil {
					t.Errorf("%v: the test pod runs %v %v, want ideapool verify-load --check", args, c["command"], a)
				}
			}
		}
	})

	t.Run("with app.spec.tls the helm test pod checks https and trusts only the app's certificate", func(t *testing.T) {
		apps := []string{"--set", "operator.watchNamespace=apps"}
		cases := map[string]struct {
			args   []string
			url    string
			secret string
			ns     string // the test pod's: the release's, or the app's with TLS (where its Secret is)
		}{
			"plain":                {url: "--url=http://ideapool.ns1.svc", ns: "ns1"},
			"secretName":           {args: []string{"--set", "app.spec.tls.secretName=mine"}, url: "--url=https://ideapool.ns1.svc", secret: "mine", ns: "ns1"},
			"cert-manager":         {args: []string{"--set", "app.spec.tls.certManager.issuerRef.name=ca"}, url: "--url=https://ideapool.ns1.svc", secret: "ideapool-tls", ns: "ns1"},
			"plain, app elsewhere": {args: apps, url: "--url=http://ideapool.apps.svc", ns: "ns1"},
			"TLS, app elsewhere":   {args: append([]string{"--set", "app.spec.tls.secretName=mine"}, apps...), url: "--url=https://ideapool.apps.svc", secret: "mine", ns: "apps"},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				args := append([]string{"--namespace", "ns1"}, tc.args...)
				objs := helmTemplate(t, bins["helm4"], "", args...)
				pods := find(objs, "Pod")
				if len(pods) != 1 {
					t.Fatalf("%d test pods", len(pods))
				}
				p := pods[0]
				if ns := p.get("metadata", "namespace"); ns != tc.ns {
					t.Errorf("the test pod is in %v, want %s", ns, tc.ns)
				}
				c := p.get("spec", "containers").([]any)[0].(map[string]any)
				a := fmt.Sprint(c["args"])
				if !strings.Contains(a, tc.url+" ") && !strings.HasSuffix(a, tc.url+"]") {
					t.Errorf("args %s, want %s", a, tc.url)
				}
				vols, _ := p.get("spec", "volumes").([]any)
				if tc.secret == "" {
					if len(vols) != 0 || strings.Contains(a, "--pinned-certificate") {
						t.Errorf("a plain app's test pod mounts %v, args %s", vols, a)
					}
					return
				}
				if !strings.Contains(a, "--pinned-certificate=/tls/tls.crt") {
					t.Errorf("args %s pin no certificate", a)
				}
				if len(vols) != 1 {
					t.Fatalf("volumes %v, want the TLS Secret", vols)
				}
				sec := vols[0].(map[string]any)["secret"].(map[string]any)
				items := fmt.Sprint(sec["items"])
				if sec["secretName"] != tc.secret || strings.Contains(items, "tls.key") || !strings.Contains(items, "tls.crt") {
					t.Errorf("secret volume %v, want tls.crt of %s and never tls.key", sec, tc.secret)
				}
			})
		}
	})
}

// appTemplates are the ConfigMaps holding the chart's IdeasApp.
func appTemplates(objs []object) []object {
	var out []object
	for _, o := range find(objs, "ConfigMap") {
		if o.meta("labels")["app.kubernetes.io/component"] == "app-template" {
			out = append(out, o)
		}
	}
	return out
}

// templateApp is the IdeasApp of the chart's one app template, and its keep.
func templateApp(t *testing.T, objs []object) (object, string) {
	t.Helper()
	cms := appTemplates(objs)
	if len(cms) != 1 {
		t.Fatalf("want one app template ConfigMap (app.enabled defaults to true), got %d", len(cms))
	}
	data, _ := cms[0]["data"].(map[string]any)
	raw, _ := data["ideasapp.yaml"].(string)
	apps := parseManifests(t, raw)
	if len(apps) != 1 {
		t.Fatalf("the app template's ideasapp.yaml holds %d objects:\n%s", len(apps), raw)
	}
	keep, _ := data["keep"].(string)
	return apps[0], keep
}

// operatorArgs are the operator container's arguments, as JSON.
func operatorArgs(t *testing.T, objs []object) string {
	t.Helper()
	deps := find(objs, "Deployment")
	if len(deps) != 1 {
		t.Fatalf("want one operator Deployment, got %d", len(deps))
	}
	b, _ := json.Marshal(deps[0].get("spec", "template", "spec", "containers"))
	return string(b)
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

// chartCluster is a bare API server on which a chart test runs Helm, and
// the operator as the chart's Deployment would run it.
type chartCluster struct {
	*cluster
	bins map[string]string
}

func newChartCluster(t *testing.T, bins map[string]string) *chartCluster {
	t.Helper()
	return &chartCluster{cluster: startBareCluster(t), bins: bins}
}

// helm runs a Helm major ("helm3", "helm4") against the cluster.
func (c *chartCluster) helm(t *testing.T, major string, args ...string) string {
	t.Helper()
	out, err := runTool([]string{"KUBECONFIG=" + c.kubeconfig}, "", c.bins[major], args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

func (c *chartCluster) crdExists() bool {
	_, err := c.dynamic.Resource(crdGVR).Get(context.Background(), "ideasapps.ideapool.dev", metav1.GetOptions{})
	return err == nil
}

// app is the IdeasApp ns/name, nil if there is none.
func (c *chartCluster) app(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := c.dynamic.Resource(ideasAppsGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get ideasapp %s/%s: %v", ns, name, err)
	}
	return u
}

// waitUntil polls cond for up to 30 s; describe says what was seen last.
func waitUntil(t *testing.T, cond func() bool, describe func() string) {
	t.Helper()
	if _, ok := waitFor(30*time.Second, cond); !ok {
		t.Fatalf("within 30 s: %s", describe())
	}
}

// waitApp waits until IdeasApp ns/name has the access token lifetime want
// in its spec, and the operator's children of it exist with that lifetime
// in NAME-config (what the pods read), and returns the IdeasApp.
func (c *chartCluster) waitApp(t *testing.T, ns, name string, want time.Duration) *unstructured.Unstructured {
	t.Helper()
	ctx := context.Background()
	var app *unstructured.Unstructured
	var errS, errC, errD, errV error
	var specTTL, configTTL string
	waitUntil(t, func() bool {
		if app = c.app(t, ns, name); app != nil {
			specTTL, _, _ = unstructured.NestedString(app.Object, "spec", "tokens", "accessTokenTTL")
		}
		var cm *corev1.ConfigMap
		_, errS = c.client.CoreV1().Secrets(ns).Get(ctx, name+"-keyset", metav1.GetOptions{})
		cm, errC = c.client.CoreV1().ConfigMaps(ns).Get(ctx, name+"-config", metav1.GetOptions{})
		_, errD = c.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		_, errV = c.client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if errC == nil {
			configTTL = cm.Data["access-token-ttl"]
		}
		return app != nil && sameDuration(specTTL, want) && sameDuration(configTTL, want) &&
			errS == nil && errC == nil && errD == nil && errV == nil
	}, func() string {
		return fmt.Sprintf("IdeasApp %s/%s (exists: %v) has spec.tokens.accessTokenTTL %q and its ConfigMap %s-config access-token-ttl %q, want %s; "+
			"keyset Secret: %v, ConfigMap: %v, Deployment: %v, Service: %v", ns, name, app != nil, specTTL, name, configTTL, want, errS, errC, errD, errV)
	})
	return app
}

func sameDuration(s string, want time.Duration) bool {
	d, err := time.ParseDuration(s)
	return err == nil && d == want
}

// chartOperator is `ideapool operator` run as a release's Deployment runs
// it: with the Deployment's arguments (but the listen addresses and leader
// election, which are the test's) and as its ServiceAccount, so that it has
// the chart's RBAC and nothing more.
type chartOperator struct {
	logs *syncBuffer
	args []string
	stop func()
}

func (c *chartCluster) runChartOperator(t *testing.T, ns, release string) *chartOperator {
	t.Helper()
	deps, err := c.client.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=operator,app.kubernetes.io/instance=" + release})
	if err != nil || len(deps.Items) != 1 || len(deps.Items[0].Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want the one operator Deployment of release %s in %s: %v", release, ns, err)
	}
	pod := deps.Items[0].Spec.Template.Spec
	args := []string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--leader-elect=false"}
	for _, a := range pod.Containers[0].Args[1:] { // after "operator"
		if !strings.HasPrefix(a, "--metrics-bind-address=") && !strings.HasPrefix(a, "--health-probe-bind-address=") &&
			!strings.HasPrefix(a, "--leader-elect=") {
			args = append(args, a)
		}
	}
	op := &chartOperator{logs: &syncBuffer{}, args: args}
	cmd := exec.Command(binary, append([]string{"operator"}, args...)...)
	cmd.Env = append(cleanEnv(), "KUBECONFIG="+c.kubeconfigAs(t, ns, pod.ServiceAccountName))
	cmd.Stdout, cmd.Stderr = op.logs, op.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start operator: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	op.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("operator exited with %v after SIGTERM\n%s", err, op.logs)
				}
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("operator did not stop within 15 s of SIGTERM\n%s", op.logs)
			}
			if t.Failed() {
				t.Logf("operator %v logs:\n%s", args, op.logs)
			}
		})
	}
	t.Cleanup(op.stop)
	return op
}

// waitLog waits for the operator to log msg.
func (op *chartOperator) waitLog(t *testing.T, msg string) {
	t.Helper()
	waitUntil(t, func() bool { return strings.Contains(op.logs.String(), msg) },
		func() string { return fmt.Sprintf("the operator did not log %q:\n%s", msg, op.logs) })
}

// releaseKinds are the kinds of the objects in a release's manifest.
func (c *chartCluster) releaseKinds(t *testing.T, major, ns, release string) []string {
	t.Helper()
	var kinds []string
	for _, o := range parseManifests(t, c.helm(t, major, "get", "manifest", release, "--namespace", ns)) {
		kinds = append(kinds, o.kind())
	}
	return kinds
}

func sameUID(t *testing.T, app *unstructured.Unstructured, uid types.UID) {
	t.Helper()
	if app.GetUID() != uid {
		t.Fatalf("IdeasApp %s was deleted and made again (uid %s, was %s): its signing keys and database went with it",
			app.GetName(), app.GetUID(), uid)
	}
}

// TestChartAndKustomizeOnAPIServer checks the rendered manifests on a real
// API server, then takes the chart through what a platform team does with
// it, with Helm 3 and Helm 4, each on a cluster that has never had the CRD.
func TestChartAndKustomizeOnAPIServer(t *testing.T) {
	bins := helmBinaries(t)
	start := time.Now()
	c := newChartCluster(t, bins)
	kubectl := filepath.Join(c.assets, "kubectl")
	kenv := []string{"KUBECONFIG=" + c.kubeconfig}
	ctx := context.Background()
	nsFor := func(t *testing.T, ns string) {
		t.Helper()
		_, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}

	t.Run("rendered manifests pass server-side dry-run", func(t *testing.T) {
		const ns = "dry-run"
		nsFor(t, ns)
		for _, values := range ciValues(t) {
			for _, major := range []string{"helm3", "helm4"} {
				args := []string{"template", "dry", chartDir, "--namespace", ns, "--kube-version", "1.37.2"}
				if values != "" {
					args = append(args, "-f", values)
				}
				manifest := c.helm(t, major, args...)
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

	for _, major := range []string{"helm3", "helm4"} {
		t.Run(major+" on a fresh cluster", func(t *testing.T) { chartJourney(t, newChartCluster(t, bins), major) })
	}
	t.Logf("chart on the API server: %s", time.Since(start).Round(100*time.Millisecond))
}

// chartJourney installs the chart with one Helm major on a cluster without
// the CRD, upgrades it with the README's plain command, rolls back,
// uninstalls and installs again, with the operator applying every change to
// the IdeasApp and never deleting it.
func chartJourney(t *testing.T, c *chartCluster, major string) {
	const ns, rel, app = "ideapool-system", "ideapool", "ideapool"
	ctx := context.Background()

	notes := c.helm(t, major, "install", rel, chartDir, "--namespace", ns, "--create-namespace")
	if !c.crdExists() {
		t.Fatal("helm install did not create the IdeasApp CRD")
	}
	for _, stale := range []string{"--force", "--take-ownership"} {
		if strings.Contains(notes, stale) {
			t.Errorf("the NOTES still ask for %s:\n%s", stale, notes)
		}
	}
	op := c.runChartOperator(t, ns, rel)
	uid := c.waitApp(t, ns, app, 10*time.Minute).GetUID()

	// The README's command, nothing more: Helm 3 used to report success
	// and change nothing here.
	c.helm(t, major, "upgrade", rel, chartDir, "--namespace", ns, "--reuse-values", "--set", "app.spec.tokens.accessTokenTTL=7m")
	sameUID(t, c.waitApp(t, ns, app, 7*time.Minute), uid)
	if kinds := c.releaseKinds(t, major, ns, rel); slices.Contains(kinds, "IdeasApp") {
		t.Errorf("the release holds the IdeasApp (%v): Helm would delete it on uninstall or rollback", kinds)
	}

	// A field the values do not set, set by hand, outlives a rollback.
	c.kubectl(t, "", "patch", "ideasapp", app, "-n", ns, "--type", "merge", "-p", `{"spec":{"image":"example.com/ideapool:by-hand"}}`)
	c.helm(t, major, "rollback", rel, "1", "--namespace", ns)
	got := c.waitApp(t, ns, app, 10*time.Minute)
	sameUID(t, got, uid)
	if img, _, _ := unstructured.NestedString(got.Object, "spec", "image"); img != "example.com/ideapool:by-hand" {
		t.Errorf("spec.image %q after the rollback; the value set by hand is gone", img)
	}

	c.helm(t, major, "uninstall", rel, "--namespace", ns)
	op.waitLog(t, "app template not found")
	if !c.crdExists() {
		t.Error("helm uninstall deleted the CRD (crds.keep defaults to true)")
	}
	got = c.app(t, ns, app)
	if got == nil {
		t.Fatal("helm uninstall deleted the IdeasApp (app.keep defaults to true)")
	}
	sameUID(t, got, uid)
	if _, err := c.client.CoreV1().Secrets(ns).Get(ctx, app+"-keyset", metav1.GetOptions{}); err != nil {
		t.Errorf("after helm uninstall the signing keys are gone: %v", err)
	}
	if _, err := c.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, app+"-data", metav1.GetOptions{}); err != nil {
		t.Errorf("after helm uninstall the database volume is gone: %v", err)
	}
	op.stop()

	// Installing again finds the kept CRD and IdeasApp: no flag needed,
	// the operator takes the IdeasApp back with its keys and data.
	c.helm(t, major, "install", rel, chartDir, "--namespace", ns, "--set", "app.spec.tokens.accessTokenTTL=4m")
	c.runChartOperator(t, ns, rel)
	sameUID(t, c.waitApp(t, ns, app, 4*time.Minute), uid)
}

// oldChartCommit is the last commit whose chart made the IdeasApp a Helm
// object (a post-install hook on a fresh cluster, then a release object).
// testdata/ideapool-0.1.0.tgz is that chart, packaged with
// `git archive 11c87fb charts/ideapool | tar -x; helm package charts/ideapool`,
// so the test needs no git history (CI may clone shallow).
const oldChartCommit = "11c87fb4ccd8f03f96b9d56067ed0eebbe88eefb"

// oldChart is the packaged chart of oldChartCommit.
func oldChart(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "e2e", "testdata", "ideapool-0.1.0.tgz")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the chart of %s: %v", oldChartCommit, err)
	}
	return path
}

// TestChartUpgradeFromOldChart upgrades a release of the chart that made
// the IdeasApp a Helm object: Helm keeps the IdeasApp (its resource policy),
// the operator takes over the fields Helm set, and from then on every
// upgrade reaches it, a value taken out included.
func TestChartUpgradeFromOldChart(t *testing.T) {
	bins := helmBinaries(t)
	old := oldChart(t)
	for _, major := range []string{"helm3", "helm4"} {
		t.Run(major, func(t *testing.T) {
			const ns, rel, app = "legacy", "legacy", "legacy-ideapool"
			c := newChartCluster(t, bins)
			c.helm(t, major, "install", rel, old, "--namespace", ns, "--create-namespace", "--set", "app.spec.issuer=https://old.example.com")
			op := c.runChartOperator(t, ns, rel)
			if slices.ContainsFunc(op.args, func(a string) bool { return strings.HasPrefix(a, "--app-template") }) {
				t.Fatalf("the chart of %s already passes --app-template: %v", oldChartCommit, op.args)
			}
			uid := c.waitApp(t, ns, app, 10*time.Minute).GetUID()
			// The old chart's first upgrade made the IdeasApp a release
			// object (with --force on Helm 3, as its README said).
			upgrade := []string{"upgrade", rel, old, "--namespace", ns, "--reuse-values", "--set", "app.spec.tokens.accessTokenTTL=3m"}
			if major == "helm3" {
				upgrade = append(upgrade, "--force")
			}
			c.helm(t, major, upgrade...)
			sameUID(t, c.waitApp(t, ns, app, 3*time.Minute), uid)
			if kinds := c.releaseKinds(t, major, ns, rel); !slices.Contains(kinds, "IdeasApp") {
				t.Fatalf("with the old chart the IdeasApp should be a release object: %v", kinds)
			}
			op.stop()

			// The new chart drops the IdeasApp from the release.
			c.helm(t, major, "upgrade", rel, chartDir, "--namespace", ns, "--reuse-values", "--set", "app.spec.tokens.accessTokenTTL=7m")
			if got := c.app(t, ns, app); got == nil {
				t.Fatal("the upgrade to the new chart deleted the IdeasApp")
			}
			op = c.runChartOperator(t, ns, rel)
			got := c.waitApp(t, ns, app, 7*time.Minute)
			sameUID(t, got, uid)
			if iss, _, _ := unstructured.NestedString(got.Object, "spec", "issuer"); iss != "https://old.example.com" {
				t.Errorf("spec.issuer %q, want the reused value https://old.example.com", iss)
			}
			if l := got.GetLabels()["app.kubernetes.io/managed-by"]; l != "ideapool-operator" {
				t.Errorf("label app.kubernetes.io/managed-by=%q, want ideapool-operator", l)
			}
			if a := got.GetAnnotations(); a["meta.helm.sh/release-name"] != "" || a["helm.sh/resource-policy"] != "keep" {
				t.Errorf("annotations %v: want Helm's release annotations gone and its keep policy left", a)
			}

			// Values reset to the chart's: the issuer the old release set
			// is removed from the IdeasApp.
			c.helm(t, major, "upgrade", rel, chartDir, "--namespace", ns, "--set", "app.spec.tokens.accessTokenTTL=8m")
			got = c.waitApp(t, ns, app, 8*time.Minute)
			waitUntil(t, func() bool {
				got = c.app(t, ns, app)
				_, has, _ := unstructured.NestedString(got.Object, "spec", "issuer")
				return !has
			}, func() string { return fmt.Sprintf("spec.issuer is still set: %v", got.Object["spec"]) })
			sameUID(t, got, uid)

			c.helm(t, major, "uninstall", rel, "--namespace", ns)
			op.waitLog(t, "app template not found")
			if got := c.app(t, ns, app); got == nil {
				t.Fatal("helm uninstall deleted the IdeasApp")
			}
		})
	}
}
