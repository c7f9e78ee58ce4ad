package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"
	"k8s.io/client-go/dynamic"

	"github.com/ideapool/ideapool/api/v1alpha1"
	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/kubeclient"
)

// pluginName is the executable name kubectl looks for on PATH to run
// "kubectl ideapool ...".
const pluginName = "kubectl-ideapool"

// The IdeasApp resource. The plugin reads and patches it as unstructured
// data, so it works against an operator of another release.
var ideasApps = v1alpha1.GroupVersion.WithResource("ideasapps")

// Exit codes of the plugin.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitSessionEnded: credential has no live session (never signed in,
	// or the issuer refused to refresh it); `kubectl ideapool login` again.
	exitSessionEnded = 3
)

var pluginUsage = fmt.Sprintf(`kubectl ideapool: sign in to a Kubernetes cluster with ideapool, and rotate, revoke
and show the signing keys of an IdeasApp.

Usage:
  kubectl ideapool login --issuer URL --username NAME [--certificate-authority FILE]
        sign in through the issuer's /v1/auth; the password is asked on the terminal
        (without echo), or read from the first line of standard input when that is
        not a terminal. The session is kept in ~/.kube/cache/ideapool/ (mode 0600).
  kubectl ideapool credential --issuer URL --username NAME [--certificate-authority FILE]
        the client-go exec credential plugin (kubectl runs it from the kubeconfig's
        user): prints an ExecCredential with a valid ID token, refreshing the session
        when the cached token is near its expiry. Exits %d when the session has ended
        (or you never signed in): run the login command it prints.
  kubectl ideapool setup-cluster NAME [--username NAME]
        print the kube-apiserver AuthenticationConfiguration (--authentication-config)
        that trusts IdeasApp NAME's ID tokens, and the kubeconfig user that signs in
        with them (--username fills in the user's name)
  kubectl ideapool rotate NAME      activate the next key as soon as every verifier can
                                    have it (annotates %s)
  kubectl ideapool revoke NAME KID  stop trusting KID now: a fresh key signs at once
                                    (annotates %s)
  kubectl ideapool keys NAME        print the key table from the IdeasApp's status

Flags:
      --issuer URL                  the ideapool issuer (https; http only on loopback)
      --username NAME               the username (or email) to sign in as
      --certificate-authority FILE  trust the CA certificates (PEM) in FILE for the issuer
                                    instead of the system roots; login keeps it in the
                                    session, so credential needs it only to change it
  -n, --namespace NAMESPACE         namespace of the IdeasApp (default: the context's,
                                    else "default")
      --kubeconfig PATH             kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
      --context NAME                kubeconfig context (default: the current one)
  -h, --help                        show this help
`, exitSessionEnded, contract.AnnotationRotateKeys, contract.AnnotationRevokeKey)

// pluginOptions are the plugin's flags; each command takes some of them.
type pluginOptions struct {
	namespace  string
	kubeconfig string
	context    string

	issuer               string
	username             string
	certificateAuthority string
}

// pluginEnv is what the plugin reads and writes besides its arguments: the
// process's in main, a test's own in tests.
type pluginEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// home is the user's home directory: sessions live in
	// home/.kube/cache/ideapool, beside kubectl's own cache.
	home func() (string, error)
	now  func() time.Time
	// readPassword prompts on stderr and reads a password from the
	// terminal without echo; ok is false when standard input is not a
	// terminal.
	readPassword func(prompt string) (pw string, ok bool, err error)
	// lockWait bounds the wait for another plugin process that holds the
	// session's lock (it is refreshing the same session).
	lockWait time.Duration
}

// pluginCommand is one command: its positional arguments after its name,
// the flags it takes, and what it does.
type pluginCommand struct {
	args  int
	flags []string
	run   func(ctx context.Context, e pluginEnv, o pluginOptions, pos []string) error
}

var (
	kubeFlags   = []string{"n", "namespace", "kubeconfig", "context"}
	signInFlags = []string{"issuer", "username", "certificate-authority"}
)

func pluginCommands() map[string]pluginCommand {
	return map[string]pluginCommand{
		"login":      {0, signInFlags, runLogin},
		"credential": {0, signInFlags, runCredential},
		"setup-cluster": {1, append([]string{"username"}, kubeFlags...), func(ctx context.Context, e pluginEnv, o pluginOptions, pos []string) error {
			client, ns, err := o.connect()
			if err != nil {
				return err
			}
			return pluginSetupCluster(ctx, client, ns, pos[0], o.username, e.stdout, e.stderr)
		}},
		"rotate": {1, kubeFlags, func(ctx context.Context, e pluginEnv, o pluginOptions, pos []string) error {
			client, ns, err := o.connect()
			if err != nil {
				return err
			}
			return pluginRotate(ctx, client.Resource(ideasApps).Namespace(ns), pos[0], e.now(), e.stdout)
		}},
		"revoke": {2, kubeFlags, func(ctx context.Context, e pluginEnv, o pluginOptions, pos []string) error {
			client, ns, err := o.connect()
			if err != nil {
				return err
			}
			return pluginRevoke(ctx, client.Resource(ideasApps).Namespace(ns), pos[0], pos[1], e.stdout)
		}},
		"keys": {1, kubeFlags, func(ctx context.Context, e pluginEnv, o pluginOptions, pos []string) error {
			client, ns, err := o.connect()
			if err != nil {
				return err
			}
			return pluginKeys(ctx, client.Resource(ideasApps).Namespace(ns), pos[0], e.stdout)
		}},
	}
}

// runPlugin is main when the binary runs as kubectl-ideapool.
func runPlugin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return processPluginEnv(stdin, stdout, stderr).run(ctx, args)
}

// processPluginEnv is the environment of the running process.
func processPluginEnv(stdin io.Reader, stdout, stderr io.Writer) pluginEnv {
	return pluginEnv{
		stdin: stdin, stdout: stdout, stderr: stderr,
		getenv: os.Getenv,
		home:   os.UserHomeDir,
		now:    time.Now,
		readPassword: func(prompt string) (string, bool, error) {
			f, ok := stdin.(*os.File)
			if !ok || !term.IsTerminal(int(f.Fd())) {
				return "", false, nil
			}
			fmt.Fprint(stderr, prompt)
			pw, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(stderr)
			return string(pw), true, err
		},
		lockWait: time.Minute,
	}
}

func (e pluginEnv) run(ctx context.Context, args []string) int {
	var o pluginOptions
	fs := flag.NewFlagSet(pluginName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.namespace, "n", "", "")
	fs.StringVar(&o.namespace, "namespace", "", "")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "")
	fs.StringVar(&o.context, "context", "", "")
	fs.StringVar(&o.issuer, "issuer", "", "")
	fs.StringVar(&o.username, "username", "", "")
	fs.StringVar(&o.certificateAuthority, "certificate-authority", "", "")
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, pluginUsage)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "error: %v\n\n%s", err, pluginUsage)
		return exitUsage
	}
	if len(pos) == 0 || pos[0] == "help" {
		fmt.Fprint(e.stdout, pluginUsage)
		if len(pos) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := pluginCommands()[pos[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "error: unknown command %q\n\n%s", pos[0], pluginUsage)
		return exitUsage
	}
	if len(pos)-1 != cmd.args {
		fmt.Fprintf(e.stderr, "error: %s takes %d argument(s), got %d\n\n%s", pos[0], cmd.args, len(pos)-1, pluginUsage)
		return exitUsage
	}
	var foreign []string
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(cmd.flags, f.Name) {
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-"
			}
			foreign = append(foreign, dash+f.Name)
		}
	})
	if len(foreign) > 0 {
		fmt.Fprintf(e.stderr, "error: %s does not take %s\n\n%s", pos[0], strings.Join(foreign, ", "), pluginUsage)
		return exitUsage
	}
	err = cmd.run(ctx, e, o, pos[1:])
	var ended *sessionEndedError
	var usage usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ended):
		fmt.Fprintln(e.stderr, ended.Error())
		return exitSessionEnded
	case errors.As(err, &usage):
		fmt.Fprintf(e.stderr, "error: %v\n\n%s", err, pluginUsage)
		return exitUsage
	default:
		fmt.Fprintf(e.stderr, "error: %v\n", err)
		return exitError
	}
}

// usageError is a command's complaint about its flags.
type usageError string

func (u usageError) Error() string { return string(u) }

// parseInterspersed parses flags before, between and after the
// positional arguments, as kubectl does, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil // after "--" nothing is a flag
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (o pluginOptions) connect() (dynamic.Interface, string, error) {
	loader := kubeclient.Loader(o.kubeconfig, o.context)
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.UserAgent = pluginName + "/" + version
	ns := o.namespace
	if ns == "" {
		if ns, _, err = loader.Namespace(); err != nil {
			return nil, "", fmt.Errorf("namespace of the context: %w", err)
		}
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client: %w", err)
	}
	return client, ns, nil
}
