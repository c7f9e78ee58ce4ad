package main

import (
	"slices"
	"strings"
	"testing"
)

// TestOperatorAppTemplateFlag checks --app-template before anything
// connects to a cluster: a bad value is refused with the flag's name.
func TestOperatorAppTemplateFlag(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string // in stderr
	}{
		"no slash":          {args: []string{"--app-template=ideapool"}, want: `--app-template: "ideapool" is not NAMESPACE/NAME`},
		"no name":           {args: []string{"--app-template=ideapool-system/"}, want: "is not NAMESPACE/NAME"},
		"two slashes":       {args: []string{"--app-template=a/b/c"}, want: "is not NAMESPACE/NAME"},
		"namespace invalid": {args: []string{"--app-template=Team_A/app"}, want: "--app-template: \"Team_A/app\": a lowercase RFC 1123 label"},
		"name invalid":      {args: []string{"--app-template=team-a/App!"}, want: "a lowercase RFC 1123 subdomain"},
		"outside the watched namespace (the deprecated flag)": {
			args: []string{"--watch-namespace=team-a", "--app-template=team-b/app"},
			want: `namespace "team-b", which --watch-namespaces=team-a does not reconcile`,
		},
		"outside the watched namespaces": {
			args: []string{"--watch-namespaces=team-c,team-a", "--app-template=team-b/app"},
			want: `namespace "team-b", which --watch-namespaces=team-a,team-c does not reconcile`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := runCLI(t, "", append([]string{"operator"}, tc.args...)...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errOut, tc.want)
			}
		})
	}
	code, out, _ := runCLI(t, "", "operator", "--help")
	if code != 0 || !strings.Contains(out, "--app-template (env IDEAPOOL_APP_TEMPLATE") {
		t.Errorf("operator --help (exit %d) does not list --app-template with its variable:\n%s", code, out)
	}
}

func TestOperatorWatchNamespaces(t *testing.T) {
	tests := map[string]struct {
		namespaces, namespace string // --watch-namespaces, --watch-namespace
		want                  []string
		wantErr               string
	}{
		"empty watches every namespace": {want: nil},
		"one":                           {namespaces: "team-a", want: []string{"team-a"}},
		"several, spaced, repeated":     {namespaces: " team-b, team-a,,team-b ", want: []string{"team-a", "team-b"}},
		"the deprecated alias":          {namespace: "team-a", want: []string{"team-a"}},
		"alias and flag agree":          {namespaces: "team-a", namespace: "team-a", want: []string{"team-a"}},
		"alias and flag differ":         {namespaces: "team-a", namespace: "team-b", wantErr: "set only --watch-namespaces"},
		"not a namespace name":          {namespaces: "team-a,Team_B", wantErr: `--watch-namespaces: "Team_B" is not a namespace name`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := operatorConfig{watchNamespaces: tc.namespaces, watchNamespace: tc.namespace}
			got, err := c.namespaces()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("namespaces() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestOperatorWatchNamespacesFromEnvironment: the flag has its IDEAPOOL_
// variable, as every flag does.
func TestOperatorWatchNamespacesFromEnvironment(t *testing.T) {
	t.Setenv("IDEAPOOL_WATCH_NAMESPACES", "bad name")
	code, _, errOut := runCLI(t, "", "operator")
	if code == 0 || !strings.Contains(errOut, `--watch-namespaces: "bad name" is not a namespace name`) {
		t.Fatalf("IDEAPOOL_WATCH_NAMESPACES=%q: exit %d, stderr %q", "bad name", code, errOut)
	}
}
