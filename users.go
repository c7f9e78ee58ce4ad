package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/contract"
	"github.com/ideapool/ideapool/internal/password"
	"github.com/ideapool/ideapool/internal/store"
	"github.com/ideapool/ideapool/internal/token"
)

const usersAbout = `Manages accounts from the command line, on the database of --database.

  ideapool users create --email E --name N [--username U] [--role 1|2] < password
  ideapool users set-role LOGIN ROLE     (ROLE: 1 member, 2 admin; a change revokes the user's sessions)
  ideapool users disable LOGIN           (also revokes every session of the user)
  ideapool users enable LOGIN
  ideapool users list

Flags come before the arguments. LOGIN is a username or an email. The password of "create" is read from the
first line of standard input, never from a flag (flags end up in shell
history and process listings). Each change is written to standard error as
an audit log line (JSON, "audit":true, actor "cli").`

func runUsers(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("users", flag.ContinueOnError)
	database := fs.String(contract.FlagDatabase, "sqlite:data/ideapool.db", "database: sqlite:PATH, or a postgres:// URL")
	email := fs.String("email", "", "create: the user's email")
	name := fs.String("name", "", "create: the user's full name")
	username := fs.String("username", "", "create: optional username (3-64 letters, digits, '.', '_', '-')")
	role := fs.Int("role", int(store.RoleMember), "create: 1 member, 2 admin")
	if len(args) == 0 {
		fmt.Fprintln(stderr, usersAbout)
		return errUsage
	}
	verb := args[0]
	switch verb {
	case "create", "set-role", "disable", "enable", "list":
	default:
		fmt.Fprintf(stderr, "unknown users command %q\n\n%s\n", verb, usersAbout)
		return errUsage
	}
	if err := parseFlagsArgs(fs, args[1:], usersAbout, stdout, stderr); err != nil {
		return err
	}
	positional := fs.Args()

	db, err := store.Open(ctx, *database, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer db.Close()
	hasher, err := password.NewHasher(password.OWASP, rand.Reader, 0)
	if err != nil {
		return err
	}
	// The account rules are the core's; its audit lines go to standard
	// error, with "cli" as the actor.
	svc, err := accounts.New(accounts.Config{Store: db, Signer: noSigner{}, Hasher: hasher,
		Lifetimes: accounts.Lifetimes{Access: time.Minute, Refresh: time.Minute}, Now: time.Now, Rand: rand.Reader,
		Log: slog.New(slog.NewJSONHandler(stderr, nil))})
	if err != nil {
		return err
	}
	ctx = accounts.WithActor(accounts.WithDialect(ctx, "cli"), "cli")
	switch verb {
	case "create":
		if len(positional) != 0 {
			return fmt.Errorf("create takes no arguments; got %v", positional)
		}
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		u, err := svc.Register(ctx, accounts.SignupRequest{Email: *email, Name: *name, Password: pw, Username: *username}, store.Role(*role))
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "created user %s (%s, role %d)\n", u.Username, u.Email, u.Role)
		return nil
	case "set-role":
		if len(positional) != 2 {
			return errors.New("usage: ideapool users set-role LOGIN ROLE")
		}
		r, err := strconv.Atoi(positional[1])
		if err != nil || (store.Role(r) != store.RoleMember && store.Role(r) != store.RoleAdmin) {
			return fmt.Errorf("role %q: use 1 (member) or 2 (admin)", positional[1])
		}
		u, n, err := svc.SetRole(ctx, positional[0], store.Role(r))
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "user %s now has role %d; %d sessions revoked (their tokens carried the old role)\n", u.Username, r, n)
		return nil
	case "disable":
		if len(positional) != 1 {
			return fmt.Errorf("usage: ideapool users %s LOGIN", verb)
		}
		u, n, err := svc.DisableUser(ctx, positional[0])
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "user %s disabled; every session revoked (%d live)\n", u.Username, n)
		return nil
	case "enable":
		if len(positional) != 1 {
			return fmt.Errorf("usage: ideapool users %s LOGIN", verb)
		}
		u, err := svc.EnableUser(ctx, positional[0])
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "user %s enabled\n", u.Username)
		return nil
	case "list":
		users, err := db.ListUsers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tEMAIL\tNAME\tROLE\tCREATED\tDISABLED")
		for _, u := range users {
			disabled := ""
			if u.DisabledAt != nil {
				disabled = u.DisabledAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", u.Username, u.Email, u.Name, u.Role, u.CreatedAt.Format(time.RFC3339), disabled)
		}
		return tw.Flush()
	}
	return nil // unreachable: verbs are checked above
}

// readPassword reads the first line of stdin.
func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, password.MaxLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input: pipe it in, e.g. `printf '%s\\n' \"$PW\" | ideapool users create ...`")
	}
	return pw, nil
}

// describe turns validation errors into one line per field.
func describe(err error) error {
	if e, ok := apperr.As(err); ok && len(e.Fields) > 0 {
		var b strings.Builder
		for k, v := range e.Fields {
			fmt.Fprintf(&b, "\n  --%s %s", k, v)
		}
		return fmt.Errorf("%s:%s", e.Message, b.String())
	}
	return err
}

// noSigner refuses to issue tokens: the command line creates accounts, not
// sessions.
type noSigner struct{}

func (noSigner) SignAccess(token.AccessClaims, time.Duration) (string, token.AccessClaims, error) {
	return "", token.AccessClaims{}, errors.New("the users command issues no tokens")
}

func (noSigner) SignID(token.IDClaims, string, time.Duration) (string, error) {
	return "", errors.New("the users command issues no tokens")
}
