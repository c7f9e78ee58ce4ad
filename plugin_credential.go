package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The client-go exec credential protocol: kubectl runs the command of the
// kubeconfig user's exec section, with KUBERNETES_EXEC_INFO holding an
// ExecCredential (apiVersion, spec.interactive), and reads an
// ExecCredential with status.token and status.expirationTimestamp from its
// standard output; it runs the command again once that time has passed.
const (
	execKind           = "ExecCredential"
	execAPIVersion     = "client.authentication.k8s.io/v1"
	execAPIVersionBeta = "client.authentication.k8s.io/v1beta1"
	execInfoEnv        = "KUBERNETES_EXEC_INFO"
)

type execCredential struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Spec       execSpec    `json:"spec"`
	Status     *execStatus `json:"status,omitempty"`
}

// execSpec is what kubectl tells the plugin; the cluster is not asked for
// (provideClusterInfo: false).
type execSpec struct {
	Interactive bool `json:"interactive"`
}

type execStatus struct {
	ExpirationTimestamp string `json:"expirationTimestamp"`
	Token               string `json:"token"`
}

// execRequest reads KUBERNETES_EXEC_INFO; without it (the command run by
// hand) the answer is a v1 ExecCredential.
func execRequest(info string) (execCredential, error) {
	if strings.TrimSpace(info) == "" {
		return execCredential{APIVersion: execAPIVersion, Kind: execKind}, nil
	}
	var in execCredential
	if err := json.Unmarshal([]byte(info), &in); err != nil {
		return execCredential{}, fmt.Errorf("%s is not an ExecCredential: %w", execInfoEnv, err)
	}
	if in.Kind != execKind {
		return execCredential{}, fmt.Errorf("%s has kind %q, want %s", execInfoEnv, in.Kind, execKind)
	}
	if in.APIVersion != execAPIVersion && in.APIVersion != execAPIVersionBeta {
		return execCredential{}, fmt.Errorf("%s asks for apiVersion %q; the plugin answers %s (and v1beta1): set it in the kubeconfig user's exec section",
			execInfoEnv, in.APIVersion, execAPIVersion)
	}
	return in, nil
}

// writeExecCredential answers req with token, valid until exp.
func writeExecCredential(w io.Writer, req execCredential, token string, exp time.Time) error {
	out := execCredential{APIVersion: req.APIVersion, Kind: execKind, Spec: execSpec{Interactive: req.Spec.Interactive},
		Status: &execStatus{ExpirationTimestamp: exp.UTC().Format(time.RFC3339), Token: token}}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// sessionEndedError: there is no live session; the person must sign in
// again with the command it names.
type sessionEndedError struct {
	why   string
	login string
}

func (e *sessionEndedError) Error() string {
	return fmt.Sprintf("kubectl ideapool: %s.\nTo sign in, run:\n  %s", e.why, e.login)
}

// runCredential is `kubectl ideapool credential`, the exec credential
// plugin: the cached ID token while it has comfortably long left, else a
// new one through the session's refresh token, rotated and saved under the
// session's lock.
func runCredential(ctx context.Context, e pluginEnv, o pluginOptions, _ []string) error {
	if o.issuer == "" || o.username == "" {
		return usageError("credential needs --issuer and --username (as `kubectl ideapool setup-cluster` prints them)")
	}
	req, err := execRequest(e.getenv(execInfoEnv))
	if err != nil {
		return err
	}
	store, err := e.sessions()
	if err != nil {
		return err
	}
	ref := newSessionRef(o.issuer, o.username)
	load := func() (session, error) {
		sess, err := store.load(ref)
		switch {
		case errors.Is(err, errNoSession):
			return session{}, &sessionEndedError{why: fmt.Sprintf("not signed in to %s as %s on this machine", ref.issuer, o.username),
				login: loginCommand(o, "")}
		case err != nil:
			return session{}, err
		case sess.Ended != "":
			return session{}, &sessionEndedError{why: fmt.Sprintf("the session of %s at %s has ended: %s", o.username, ref.issuer, sess.Ended),
				login: loginCommand(o, sess.CertificateAuthorityFile)}
		}
		return sess, nil
	}
	sess, err := load()
	if err != nil {
		return err
	}
	if c, err := parseIDToken(sess.IDToken); err == nil && c.fresh(e.now()) {
		return writeExecCredential(e.stdout, req, sess.IDToken, c.expiry())
	}

	unlock, err := store.lock(ctx, ref, e.lockWait)
	if err != nil {
		return err
	}
	defer unlock()
	// Another kubectl may have refreshed the session while this one waited.
	if sess, err = load(); err != nil {
		return err
	}
	cached, cachedErr := parseIDToken(sess.IDToken)
	now := e.now()
	if cachedErr == nil && cached.fresh(now) {
		return writeExecCredential(e.stdout, req, sess.IDToken, cached.expiry())
	}
	caPEM, caFile := []byte(sess.CertificateAuthority), ""
	if o.certificateAuthority != "" {
		if caPEM, err = readCertificateAuthority(o.certificateAuthority); err != nil {
			return err
		}
		caFile = o.certificateAuthority
	}
	client, err := newIssuerClient(o.issuer, caPEM, caFile)
	if err != nil {
		return err
	}
	tok, err := client.refresh(ctx, sess.RefreshToken)
	if errors.Is(err, errRefreshRefused) {
		ended := session{Issuer: sess.Issuer, Username: sess.Username, CertificateAuthority: sess.CertificateAuthority,
			CertificateAuthorityFile: sess.CertificateAuthorityFile, Ended: err.Error()}
		if serr := store.save(ended); serr != nil {
			fmt.Fprintf(e.stderr, "warning: %v\n", serr)
		}
		return &sessionEndedError{why: fmt.Sprintf("the session of %s at %s has ended: %v", o.username, ref.issuer, err),
			login: loginCommand(o, sess.CertificateAuthorityFile)}
	}
	if err != nil {
		if cachedErr == nil && cached.valid(now) {
			fmt.Fprintf(e.stderr, "warning: could not refresh the session (%v); using the cached ID token, valid until %s\n",
				err, cached.expiry().Format(time.RFC3339))
			return writeExecCredential(e.stdout, req, sess.IDToken, cached.expiry())
		}
		return fmt.Errorf("refresh the session of %s at %s: %w", o.username, ref.issuer, err)
	}
	claims, err := parseIDToken(tok.IDToken)
	if err != nil {
		return fmt.Errorf("%s answered an ID token the plugin cannot read: %w", ref.issuer, err)
	}
	sess.IDToken, sess.RefreshToken = tok.IDToken, tok.RefreshToken
	if o.certificateAuthority != "" {
		sess.CertificateAuthority = string(caPEM)
	}
	if err := store.save(sess); err != nil {
		// The token is good now; the next run retries the old refresh
		// token, which the issuer's reuse grace answers for a few seconds.
		fmt.Fprintf(e.stderr, "warning: the refreshed session could not be saved (%v): a later kubectl command may have to sign in again\n", err)
	}
	return writeExecCredential(e.stdout, req, tok.IDToken, claims.expiry())
}
