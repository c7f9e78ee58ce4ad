package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// runLogin is `kubectl ideapool login`: sign in with a password and keep
// the session for credential.
func runLogin(ctx context.Context, e pluginEnv, o pluginOptions, _ []string) error {
	if o.issuer == "" || o.username == "" {
		return usageError("login needs --issuer and --username")
	}
	caPEM, err := readCertificateAuthority(o.certificateAuthority)
	if err != nil {
		return err
	}
	client, err := newIssuerClient(o.issuer, caPEM, o.certificateAuthority)
	if err != nil {
		return err
	}
	store, err := e.sessions()
	if err != nil {
		return err
	}
	pw, err := e.password(fmt.Sprintf("Password for %s at %s: ", o.username, client.issuer))
	if err != nil {
		return err
	}
	tok, err := client.login(ctx, o.username, pw)
	if err != nil {
		return err
	}
	claims, err := parseIDToken(tok.IDToken)
	if err != nil {
		return fmt.Errorf("%s answered an ID token the plugin cannot read: %w", client.issuer, err)
	}
	if claims.Issuer != client.issuer {
		// Legitimate when the issuer is reached through another address
		// (a port-forward); the API server matches the token's own iss.
		fmt.Fprintf(e.stderr, "warning: the ID token's issuer is %q, not --issuer %q: the API server's AuthenticationConfiguration must name %q\n",
			claims.Issuer, client.issuer, claims.Issuer)
	}
	ref := newSessionRef(client.issuer, o.username)
	unlock, err := store.lock(ctx, ref, e.lockWait)
	if err != nil {
		return err
	}
	defer unlock()
	caFile := o.certificateAuthority
	if caFile != "" {
		if abs, err := filepath.Abs(caFile); err == nil {
			caFile = abs // credential runs from whatever directory kubectl is in
		}
	}
	sess := session{Issuer: client.issuer, Username: o.username, IDToken: tok.IDToken, RefreshToken: tok.RefreshToken,
		CertificateAuthority: string(caPEM), CertificateAuthorityFile: caFile}
	if err := store.save(sess); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "Signed in to %s as %s (ID token valid until %s); session saved in %s.\n"+
		"kubectl uses it through the exec credential plugin: see `kubectl ideapool setup-cluster`.\n",
		client.issuer, o.username, claims.expiry().Format("2006-01-02T15:04:05Z07:00"), store.path(ref))
	return err
}

// password reads the password from the terminal without echo, or from the
// first line of standard input when that is not a terminal.
func (e pluginEnv) password(prompt string) (string, error) {
	pw, ok, err := e.readPassword(prompt)
	if err != nil {
		return "", fmt.Errorf("read the password from the terminal: %w", err)
	}
	if !ok {
		if pw, err = readPassword(e.stdin); err != nil {
			return "", errors.New("no password: standard input is not a terminal and its first line is empty " +
				"(pipe it in, e.g. `printf '%s\\n' \"$PW\" | kubectl ideapool login ...`)")
		}
	}
	if pw == "" {
		return "", errors.New("no password given")
	}
	return pw, nil
}

// readCertificateAuthority reads --certificate-authority; "" means the
// system roots.
func readCertificateAuthority(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--certificate-authority: %w", err)
	}
	return b, nil
}

// loginCommand is the command that signs in again with the arguments the
// credential plugin was given (and the CA file of the last login).
func loginCommand(o pluginOptions, caFile string) string {
	if o.certificateAuthority != "" {
		caFile = o.certificateAuthority
	}
	cmd := "kubectl ideapool login --issuer " + shellQuote(o.issuer) + " --username " + shellQuote(o.username)
	if caFile != "" {
		cmd += " --certificate-authority " + shellQuote(caFile)
	}
	return cmd
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
