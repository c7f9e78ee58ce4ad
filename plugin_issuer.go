package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// issuerClient signs in at an ideapool issuer through its rotating
// dialect: POST /v1/auth answers an ID token, an access token and a
// refresh token; POST /v1/auth/refreshtoken spends the refresh token for a
// new set (the old one stops working).
type issuerClient struct {
	issuer string // without a trailing slash
	caFile string // --certificate-authority, named in TLS errors; "" if none
	ca     bool   // a CA was given (flag or session); otherwise system roots
	http   *http.Client
}

// v1Tokens is the dialect's answer.
type v1Tokens struct {
	IDToken      string `json:"idToken"`
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
}

// issuerTimeout bounds one request to the issuer.
const issuerTimeout = 30 * time.Second

// newIssuerClient checks the issuer URL and trusts caPEM for it (the
// system roots when empty). caFile is where caPEM came from, for errors.
func newIssuerClient(issuer string, caPEM []byte, caFile string) (*issuerClient, error) {
	issuer = strings.TrimRight(issuer, "/")
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, usageError(fmt.Sprintf("--issuer %q is not an issuer URL (https://HOST[:PORT][/PATH])", issuer))
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		// a local test issuer: the password never leaves the machine
	default:
		return nil, usageError(fmt.Sprintf("--issuer %q: the issuer must be https (a password is sent to it, and kube-apiserver accepts only https issuers)", issuer))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			where := "the session's certificate authority"
			if caFile != "" {
				where = "--certificate-authority " + caFile
			}
			return nil, fmt.Errorf("%s holds no PEM certificate", where)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &issuerClient{issuer: issuer, caFile: caFile, ca: len(caPEM) > 0, http: &http.Client{
		Transport: tr,
		Timeout:   issuerTimeout,
		// Never follow a redirect with a password or a refresh token in
		// the body: the person should name the right issuer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Errors the issuer answers; each carries the message the person reads.
var (
	errWrongPassword  = errors.New("wrong username or password")
	errRefreshRefused = errors.New("the issuer refused to refresh the session: it expired, was revoked (logout, reuse of a refresh token, or an administrator), or the account was disabled")
)

// v1Answer is the dialect's body, success or failure.
type v1Answer struct {
	StatusMessage string    `json:"statusMessage"`
	Error         string    `json:"error"`
	Tokens        *v1Tokens `json:"tokens"`
}

func (c *issuerClient) login(ctx context.Context, username, password string) (v1Tokens, error) {
	tok, status, ans, err := c.post(ctx, "/v1/auth", map[string]string{"username": username, "password": password})
	if err != nil {
		return v1Tokens{}, err
	}
	if status == http.StatusBadRequest && ans.Error == "Incorrect username or password." {
		return v1Tokens{}, fmt.Errorf("%w for %q at %s", errWrongPassword, username, c.issuer)
	}
	return tok, c.failed(status, ans)
}

// refresh spends a refresh token. A request whose answer was lost (the
// connection broke) is sent once more with the same token: within the
// issuer's reuse grace it answers the same new tokens again instead of
// treating the retry as a stolen token.
func (c *issuerClient) refresh(ctx context.Context, refreshToken string) (v1Tokens, error) {
	body := map[string]string{"refreshtoken": refreshToken}
	tok, status, ans, err := c.post(ctx, "/v1/auth/refreshtoken", body)
	var lost *lostAnswerError
	if errors.As(err, &lost) {
		tok, status, ans, err = c.post(ctx, "/v1/auth/refreshtoken", body)
	}
	if err != nil {
		return v1Tokens{}, err
	}
	if status == http.StatusBadRequest && ans.StatusMessage == "Failed to refresh token" {
		return v1Tokens{}, errRefreshRefused
	}
	return tok, c.failed(status, ans)
}

// failed turns an answer that is not a 200 with tokens into an error.
func (c *issuerClient) failed(status int, ans v1Answer) error {
	switch {
	case status == http.StatusOK && ans.Tokens != nil && ans.Tokens.IDToken != "" && ans.Tokens.RefreshToken != "":
		return nil
	case status == http.StatusOK:
		return fmt.Errorf("%s answered without an ID token and a refresh token: is it an ideapool issuer?", c.issuer)
	case status == http.StatusTooManyRequests:
		return fmt.Errorf("%s: too many failed sign-ins: %s", c.issuer, ans.Error)
	case status == http.StatusNotFound:
		return fmt.Errorf("%s has no /v1/auth (404): is it an ideapool issuer?", c.issuer)
	case status >= 300 && status < 400:
		return fmt.Errorf("%s redirects (%d): give the issuer's own URL as --issuer", c.issuer, status)
	default:
		detail := strings.Trim(ans.StatusMessage+": "+ans.Error, ": ")
		if detail != "" {
			detail = ": " + detail
		}
		return fmt.Errorf("%s answered %d %s%s", c.issuer, status, http.StatusText(status), detail)
	}
}

// lostAnswerError: the request may have reached the issuer, but its answer
// did not arrive.
type lostAnswerError struct{ err error }

func (e *lostAnswerError) Error() string { return e.err.Error() }
func (e *lostAnswerError) Unwrap() error { return e.err }

// maxAnswer bounds what is read from the issuer.
const maxAnswer = 1 << 20

func (c *issuerClient) post(ctx context.Context, path string, body any) (v1Tokens, int, v1Answer, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return v1Tokens{}, 0, v1Answer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.issuer+path, bytes.NewReader(b))
	if err != nil {
		return v1Tokens{}, 0, v1Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", pluginName+"/"+version)
	resp, err := c.http.Do(req)
	if err != nil {
		return v1Tokens{}, 0, v1Answer{}, c.transportError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return v1Tokens{}, 0, v1Answer{}, &lostAnswerError{fmt.Errorf("reading the answer of %s: %w", c.issuer, err)}
	}
	var ans v1Answer
	if err := json.Unmarshal(raw, &ans); err != nil && resp.StatusCode == http.StatusOK {
		return v1Tokens{}, 0, v1Answer{}, fmt.Errorf("%s%s answered 200 with a body that is not the /v1/auth JSON: is it an ideapool issuer?", c.issuer, path)
	}
	var tok v1Tokens
	if ans.Tokens != nil {
		tok = *ans.Tokens
	}
	return tok, resp.StatusCode, ans, nil
}

// transportError says why the issuer could not be asked: TLS (naming the
// --certificate-authority flag), or the network.
func (c *issuerClient) transportError(err error) error {
	var (
		unknownCA x509.UnknownAuthorityError
		verify    *tls.CertificateVerificationError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &hostname):
		return fmt.Errorf("TLS: the certificate of %s is not valid for its host (%w): use the host name the certificate names in --issuer", c.issuer, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("TLS: the certificate of %s is not valid (%w)", c.issuer, err)
	case errors.As(err, &unknownCA) || errors.As(err, &verify):
		if c.caFile != "" {
			return fmt.Errorf("TLS: the certificate of %s is not signed by the CA in --certificate-authority %s (%w)", c.issuer, c.caFile, err)
		}
		if c.ca {
			return fmt.Errorf("TLS: the certificate of %s is not signed by the CA trusted at login (%w): pass --certificate-authority FILE with the CA that signs it now", c.issuer, err)
		}
		return fmt.Errorf("TLS: the certificate of %s is signed by an authority the system does not trust (%w): pass --certificate-authority FILE with that CA's certificate (PEM)", c.issuer, err)
	case errors.As(err, &record) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// (net/http says the latter without an error type to match)
		return fmt.Errorf("TLS: %s does not answer TLS (is it plain http?): %w", c.issuer, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return &lostAnswerError{fmt.Errorf("the issuer %s did not answer within %s: %w", c.issuer, issuerTimeout, err)}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &lostAnswerError{fmt.Errorf("the issuer %s closed the connection: %w", c.issuer, err)}
	}
	return fmt.Errorf("cannot reach the issuer %s: %w", c.issuer, err)
}
