// Command ideapool is an identity and idea-pool service (ideapool serve) and
// the Kubernetes operator that runs it (ideapool operator).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/ideapool/ideapool/internal/contract"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the HTTP API", runServe},
		{"migrate", "apply database schema migrations and exit", runMigrate},
		{"users", "create, list, disable accounts and set their roles", runUsers},
		{"operator", "run the Kubernetes operator of IdeasApp resources", runOperator},
		{"verify-load", "verify fresh tokens as another service would, under load, and count failures", runVerifyLoad},
		{"version", "print the version", func(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
			_, err := fmt.Fprintln(stdout, "ideapool", version)
			return err
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if filepath.Base(os.Args[0]) == pluginName { // installed as a kubectl plugin
		os.Exit(runPlugin(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdin, stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			default:
				fmt.Fprintf(stderr, "ideapool %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "ideapool: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage means the flags were wrong; the flag package already said how.
var errUsage = errors.New("usage error")

func usage(w io.Writer) {
	fmt.Fprintf(w, `ideapool %s: identity and idea-pool service.

Usage:
  ideapool <command> [flags]

Commands:
`, version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Every flag can also be set with an environment variable IDEAPOOL_<FLAG>,
for example --access-token-ttl as IDEAPOOL_ACCESS_TOKEN_TTL; a flag on the
command line wins. Run "ideapool <command> --help" for a command's flags.

Flags of "ideapool serve":
`)
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.register(fs)
	printFlags(w, fs)
}

// printFlags lists each flag with its environment variable and default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  --%s (env %s, default %q)\n      %s\n", f.Name, envName(f.Name), f.DefValue, f.Usage)
	})
}

// envName is the environment variable of a flag.
func envName(flagName string) string { return contract.EnvName(flagName) }

// parseFlags applies IDEAPOOL_* variables, then the command line, and
// prints a help that names each flag's variable.
func parseFlags(fs *flag.FlagSet, args []string, about string, stdout, stderr io.Writer) error {
	if err := parseFlagsArgs(fs, args, about, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	return nil
}

// parseFlagsArgs is parseFlags for commands that take arguments after
// their flags (left in fs.Args()).
func parseFlagsArgs(fs *flag.FlagSet, args []string, about string, stdout, stderr io.Writer) error {
	fs.SetOutput(stderr)
	usageTo := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: ideapool %s [flags]\n\n%s\n\nFlags:\n", fs.Name(), about)
		printFlags(w, fs)
	}
	fs.Usage = func() { usageTo(stderr) }
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			usageTo(stdout) // asked for: stdout, exit 0
			return flag.ErrHelp
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(envName(f.Name)); ok && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("environment %s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
