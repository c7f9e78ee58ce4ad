package main

import (
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
		"outside the watched namespace": {
			args: []string{"--watch-namespace=team-a", "--app-template=team-b/app"},
			want: `namespace "team-b", which --watch-namespace=team-a does not reconcile`,
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
