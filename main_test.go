package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the command in-process and returns its exit code and output.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsersCommand(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "users.db")
	steps := []struct {
		name    string
		stdin   string
		args    []string
		code    int
		contain string // in stdout (code 0) or stderr
	}{
		{"create admin", "the-Secret-123\n", []string{"users", "create", "--database", db, "--email", "Boss@Example.com", "--name", "Boss", "--username", "boss", "--role", "2"}, 0, "created user boss"},
		{"create member", "the-Secret-123\n", []string{"users", "create", "--database", db, "--email", "m@example.com", "--name", "M"}, 0, "role 1"},
		{"duplicate email", "the-Secret-123\n", []string{"users", "create", "--database", db, "--email", "boss@example.com", "--name", "B"}, 1, "email is already taken"},
		{"weak password", "weak\n", []string{"users", "create", "--database", db, "--email", "w@example.com", "--name", "W"}, 1, "password"},
		{"no password", "", []string{"users", "create", "--database", db, "--email", "n@example.com", "--name", "N"}, 1, "standard input"},
		{"set role", "", []string{"users", "set-role", "--database", db, "m@example.com", "2"}, 0, "role 2"},
		{"bad role", "", []string{"users", "set-role", "--database", db, "m@example.com", "3"}, 1, "use 1 (member) or 2 (admin)"},
		{"unknown user", "", []string{"users", "set-role", "--database", db, "ghost", "1"}, 1, "no user"},
		{"disable", "", []string{"users", "disable", "--database", db, "boss"}, 0, "every session revoked"},
		{"list", "", []string{"users", "list", "--database", db}, 0, "boss@example.com"},
		{"unknown verb", "", []string{"users", "frobnicate"}, 2, "unknown users command"},
		{"help", "", []string{"users"}, 2, "Manages accounts"},
	}
	for _, s := range steps {
		code, out, errOut := runCLI(t, s.stdin, s.args...)
		text := out
		if code != 0 {
			text = errOut
		}
		if code != s.code || !strings.Contains(text, s.contain) {
			t.Fatalf("%s: exit %d (want %d), stdout %q, stderr %q (want %q)", s.name, code, s.code, out, errOut, s.contain)
		}
	}
	_, out, _ := runCLI(t, "", "users", "list", "--database", db)
	for _, want := range []string{"boss", "m@example.com", "2"} {
		if !strings.Contains(out, want) {
			t.Errorf("list %q lacks %q", out, want)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := runCLI(t, "", "version"); code != 0 || !strings.HasPrefix(out, "ideapool ") {
		t.Fatalf("version: %d %q", code, out)
	}
	code, out, _ := runCLI(t, "", "serve", "--help")
	if code != 0 {
		t.Fatalf("serve --help exit %d", code)
	}
	for _, flag := range []string{"--listen", "--metrics-listen", "--database", "--keys", "--issuer", "--access-token-ttl",
		"--refresh-token-ttl", "--key-algorithm", "--key-rotation-interval", "--id-token-ttl", "--id-token-audience", "--refresh-reuse-grace"} {
		if !strings.Contains(out, flag+" ") || !strings.Contains(out, envName(strings.TrimPrefix(flag, "--"))) {
			t.Errorf("serve --help lacks %s or its variable", flag)
		}
	}
	if code, _, errOut := runCLI(t, "", "nope"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
}
