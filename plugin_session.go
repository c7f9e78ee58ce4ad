package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ideapool/ideapool/internal/atomicfile"
)

// The sign-in sessions of `kubectl ideapool login`, kept for `kubectl
// ideapool credential`: one file per issuer and user in
// ~/.kube/cache/ideapool/ (directory 0700, files 0600), replaced atomically,
// and changed only under an flock of its own lock file, so two kubectl
// processes never both spend the same refresh token.

// session is what a session file holds. The refresh token rotates on every
// refresh; the ID token is the one kubectl sends to the API server.
type session struct {
	Issuer       string `json:"issuer"`
	Username     string `json:"username"`
	IDToken      string `json:"idToken"`
	RefreshToken string `json:"refreshToken"`
	// CertificateAuthority is the PEM trusted for the issuer at login
	// (--certificate-authority), so that credential needs no flag for it,
	// and CertificateAuthorityFile the file it came from, for the login
	// command the person is told to run again.
	CertificateAuthority     string `json:"certificateAuthority,omitempty"`
	CertificateAuthorityFile string `json:"certificateAuthorityFile,omitempty"`
	// Ended says why the session ended (the issuer refused to refresh it);
	// its tokens are gone, and credential tells the person to log in.
	Ended string `json:"ended,omitempty"`
}

// sessionRef names a session: the issuer without a trailing slash, and the
// username in lower case (the issuer compares usernames and emails ignoring
// case).
type sessionRef struct {
	issuer   string
	username string
}

func newSessionRef(issuer, username string) sessionRef {
	return sessionRef{issuer: strings.TrimRight(issuer, "/"), username: strings.ToLower(strings.TrimSpace(username))}
}

// fileName is a hash of the issuer and the username: any text in either is
// safe, and two sessions never share a file.
func (r sessionRef) fileName() string {
	sum := sha256.Sum256([]byte(r.issuer + "\x00" + r.username))
	return hex.EncodeToString(sum[:])
}

// errNoSession: no session file for that issuer and user.
var errNoSession = errors.New("no session")

// sessionStore is the directory of the session files.
type sessionStore struct{ dir string }

func (e pluginEnv) sessions() (sessionStore, error) {
	home, err := e.home()
	if err != nil {
		return sessionStore{}, fmt.Errorf("home directory (for ~/.kube/cache/ideapool): %w", err)
	}
	return sessionStore{dir: filepath.Join(home, ".kube", "cache", "ideapool")}, nil
}

func (s sessionStore) path(r sessionRef) string { return filepath.Join(s.dir, r.fileName()+".json") }

// ensureDir creates the directory 0700, and narrows it to 0700 if it
// exists with a wider mode: it holds refresh tokens.
func (s sessionStore) ensureDir() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", s.dir, err)
	}
	if err := os.Chmod(s.dir, 0o700); err != nil { //nolint:gosec // G302: a directory needs x to be entered; 0700 is its owner only
		return fmt.Errorf("restrict %s to its owner: %w", s.dir, err)
	}
	return nil
}

func (s sessionStore) load(r sessionRef) (session, error) {
	path := s.path(r)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return session{}, errNoSession
	}
	if err != nil {
		return session{}, fmt.Errorf("read session: %w", err)
	}
	var sess session
	if err := json.Unmarshal(b, &sess); err != nil {
		return session{}, fmt.Errorf("session file %s is damaged (%w): remove it and log in again", path, err)
	}
	if newSessionRef(sess.Issuer, sess.Username) != r {
		return session{}, errNoSession
	}
	if sess.Ended == "" && sess.RefreshToken == "" {
		sess.Ended = "the session file holds no refresh token"
	}
	return sess, nil
}

func (s sessionStore) save(sess session) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(sess, "", "  ") //nolint:gosec // G117: the session file is where the refresh token belongs (mode 0600)
	if err != nil {
		return err
	}
	path := s.path(newSessionRef(sess.Issuer, sess.Username))
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save session %s: %w", path, err)
	}
	return nil
}

// lock takes the session's lock, waiting at most wait for another plugin
// process to finish with it.
func (s sessionStore) lock(ctx context.Context, r sessionRef, wait time.Duration) (func(), error) {
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	unlock, err := atomicfile.Lock(ctx, filepath.Join(s.dir, r.fileName()+".lock"))
	if err != nil {
		return nil, fmt.Errorf("waiting %s for another kubectl ideapool process using the session: %w", wait, err)
	}
	return unlock, nil
}

// idClaims are the claims of an ID token the plugin looks at. It does not
// verify the signature: the API server does, and the plugin only decides
// when to refresh.
type idClaims struct {
	Issuer   string  `json:"iss"`
	Expiry   float64 `json:"exp"`
	IssuedAt float64 `json:"iat"`
}

func parseIDToken(tok string) (idClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return idClaims{}, errors.New("the ID token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return idClaims{}, fmt.Errorf("the ID token's payload: %w", err)
	}
	var c idClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return idClaims{}, fmt.Errorf("the ID token's claims: %w", err)
	}
	if c.Expiry <= 0 {
		return idClaims{}, errors.New("the ID token has no exp")
	}
	return c, nil
}

func (c idClaims) expiry() time.Time { return time.Unix(int64(c.Expiry), 0).UTC() }

// refreshMargin is how long before its expiry an ID token is replaced: a
// quarter of its lifetime, at most a minute, so that a command kubectl
// starts with it does not meet its expiry half-way.
func (c idClaims) refreshMargin() time.Duration {
	life := time.Duration(c.Expiry-c.IssuedAt) * time.Second
	if c.IssuedAt <= 0 || life <= 0 {
		return time.Minute
	}
	return min(time.Minute, life/4)
}

// fresh: the token has comfortably long left.
func (c idClaims) fresh(now time.Time) bool { return c.expiry().Sub(now) > c.refreshMargin() }

// valid: the token has not expired yet.
func (c idClaims) valid(now time.Time) bool { return now.Before(c.expiry()) }
