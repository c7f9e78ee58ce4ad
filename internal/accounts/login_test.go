package accounts_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/apperr"
	"github.com/ideapool/ideapool/internal/clocktest"
	"github.com/ideapool/ideapool/internal/store"
)

func TestThrottle(t *testing.T) {
	// Each case: some failed attempts, then one with the right password.
	// Failures are 10 per account and 100 per address within 15 minutes.
	tests := map[string]struct {
		failures int
		login    func(i int) string // the name failure i is typed as
		from     func(i int) string // and its address
		thenFrom string             // the address of the right password
		want     apperr.Code        // "" for a session
		after    time.Duration      // the right password again this much later
		wantThen apperr.Code
	}{
		"nine failures of the account":  {failures: 9, login: same("victim@example.com"), from: spread, thenFrom: addr},
		"ten failures lock the account": {failures: 10, login: same("victim@example.com"), from: spread, thenFrom: addr, want: apperr.TooManyRequests, after: 15*time.Minute + time.Second},
		"its email and username count together": {failures: 10, login: func(i int) string {
			return map[bool]string{true: "victim", false: "VICTIM@example.com"}[i%2 == 0]
		}, from: spread, thenFrom: addr, want: apperr.TooManyRequests},
		"the lock ends with the window":    {failures: 10, login: same("victim@example.com"), from: spread, thenFrom: addr, want: apperr.TooManyRequests, after: 15 * time.Minute, wantThen: apperr.TooManyRequests},
		"100 failures lock the address":    {failures: 100, login: names, from: same(addr), thenFrom: addr, want: apperr.TooManyRequests, after: 15*time.Minute + time.Second},
		"another address is not locked":    {failures: 100, login: names, from: same(addr), thenFrom: "198.51.100.9"},
		"99 failures leave the address be": {failures: 99, login: names, from: same(addr), thenFrom: addr},
		// A client with an IPv6 /64 has every address in it.
		"100 failures from one /64 lock all of it": {failures: 100, login: names, from: inOne64, thenFrom: "2001:db8:1:2::ffff",
			want: apperr.TooManyRequests, after: 15*time.Minute + time.Second},
		"the next /64 is not locked":                 {failures: 100, login: names, from: inOne64, thenFrom: "2001:db8:1:3::1"},
		"an IPv4-mapped address is its IPv4 address": {failures: 100, login: names, from: same("::ffff:" + addr), thenFrom: addr, want: apperr.TooManyRequests},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			signupWith(t, f, "victim@example.com", "victim")
			for i := range tc.failures {
				_, err := f.svc.Login(request(tc.from(i)), tc.login(i), "Wrong-pass-1")
				if apperr.CodeOf(err) != apperr.Unauthorized {
					t.Fatalf("failure %d: %v, want unauthorized", i, err)
				}
			}
			f.clock.Advance(time.Minute)
			_, err := f.svc.Login(request(tc.thenFrom), "victim@example.com", password1)
			if got := codeOrEmpty(err); got != tc.want {
				t.Fatalf("the right password: %v, want %q", err, tc.want)
			}
			if tc.want == apperr.TooManyRequests {
				e, _ := apperr.As(err)
				if want := 14 * time.Minute; e.RetryAfter != want {
					t.Errorf("Retry-After %v, want %v (the window less the minute passed)", e.RetryAfter, want)
				}
			}
			if tc.after > 0 {
				f.clock.Advance(tc.after - time.Minute)
				_, err := f.svc.Login(request(tc.thenFrom), "victim@example.com", password1)
				if got := codeOrEmpty(err); got != tc.wantThen {
					t.Fatalf("the right password %v after the failures: %v, want %q", tc.after, err, tc.wantThen)
				}
			}
		})
	}
}

// TestThrottleSuccessClearsTheAccountOnly: a success forgets the
// account's failures, not the address's (which may be guessing others).
func TestThrottleSuccessClearsTheAccountOnly(t *testing.T) {
	f := newFixture(t)
	signupWith(t, f, "victim@example.com", "victim")
	for i := range 95 {
		login := "victim@example.com"
		if i >= 9 {
			login = names(i)
		}
		if _, err := f.svc.Login(request(addr), login, "Wrong-pass-1"); apperr.CodeOf(err) != apperr.Unauthorized {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if _, err := f.svc.Login(request(addr), "victim", password1); err != nil {
		t.Fatalf("the right password after 9 failures of the account: %v", err)
	}
	for i := range 9 {
		if _, err := f.svc.Login(request("198.51.100.9"), "victim", "Wrong-pass-1"); apperr.CodeOf(err) != apperr.Unauthorized {
			t.Fatalf("failure %d after the success: %v (the account's count was not cleared)", i, err)
		}
	}
	for i := range 5 {
		f.svc.Login(request(addr), names(i), "Wrong-pass-1") //nolint:errcheck // the 96th to 100th failures of the address
	}
	if _, err := f.svc.Login(request(addr), "victim", password1); apperr.CodeOf(err) != apperr.TooManyRequests {
		t.Fatalf("the address's 101st attempt: %v, want too many requests (a success must not reset the address)", err)
	}
}

// TestThrottleHoldsUnderBursts: attempts that arrive together see each
// other; no more passwords are checked than the limit.
func TestThrottleHoldsUnderBursts(t *testing.T) {
	f := newFixture(t)
	signupWith(t, f, "victim@example.com", "victim")
	const n = 30
	codes := make([]apperr.Code, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := f.svc.Login(request(spread(i)), "victim", "Wrong-pass-1")
			codes[i] = apperr.CodeOf(err)
		})
	}
	wg.Wait()
	count := map[apperr.Code]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[apperr.Unauthorized] > 10 || count[apperr.Unauthorized]+count[apperr.TooManyRequests] != n {
		t.Fatalf("%d attempts at once: %v; want at most 10 checked (unauthorized), the rest refused unchecked", n, count)
	}
}

// TestLoginFailuresLookAlike: an unknown account, a wrong password and a
// disabled account get the same answer and the same metric reason; only
// the audit log tells them apart.
func TestLoginFailuresLookAlike(t *testing.T) {
	f := newFixture(t)
	signupWith(t, f, "victim@example.com", "victim")
	signupWith(t, f, "off@example.com", "off")
	if _, _, err := f.svc.DisableUser(context.Background(), "off"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		login, password, reason string
	}{
		{"nobody@example.com", "Wrong-pass-1", "unknown_account"},
		{"victim@example.com", "Wrong-pass-1", "bad_password"},
		{"off@example.com", password1, "disabled"},
	}
	var messages []string
	for _, tc := range tests {
		_, err := f.svc.Login(request(addr), tc.login, tc.password)
		e, ok := apperr.As(err)
		if !ok || e.Code != apperr.Unauthorized {
			t.Fatalf("%s: %v, want unauthorized", tc.reason, err)
		}
		messages = append(messages, e.Message)
	}
	if messages[0] != messages[1] || messages[1] != messages[2] {
		t.Errorf("the answers differ: %q", messages)
	}
	if want := map[string]int{accounts.ReasonInvalidCredentials: 3}; fmt.Sprint(f.obs.failures) != fmt.Sprint(want) {
		t.Errorf("metric reasons %v, want %v: metrics must not tell accounts from other names", f.obs.failures, want)
	}
	failed := f.logs.audits(t, accounts.EventLoginFailed)
	if len(failed) != len(tests) {
		t.Fatalf("%d login_failed audit lines, want %d", len(failed), len(tests))
	}
	for i, tc := range tests {
		if failed[i]["reason"] != tc.reason {
			t.Errorf("audit line %d: reason %v, want %s", i, failed[i]["reason"], tc.reason)
		}
	}
}

// disableDuringLogin disables the account (as `ideapool users disable`
// does) right before the session is created: the disable lands while the
// login is being checked.
type disableDuringLogin struct{ store.Store }

func (d disableDuringLogin) CreateSession(ctx context.Context, s store.Session, rt store.RefreshToken, role store.Role) error {
	at := t0
	if _, err := d.UpdateUser(ctx, s.UserID, store.UserUpdate{DisabledAt: &at, RevokeSessionsAt: &at}); err != nil {
		return err
	}
	return d.Store.CreateSession(ctx, s, rt, role)
}

func TestDisableDuringLogin(t *testing.T) {
	f := newFixture(t)
	signupWith(t, f, "late@example.com", "late")
	racy := newReplica(t, f.url, f.clock, withStore(func(s store.Store) accounts.Store { return disableDuringLogin{s} }))
	_, err := racy.svc.Login(request(addr), "late", password1)
	if apperr.CodeOf(err) != apperr.Unauthorized {
		t.Fatalf("login while the account is disabled: %v, want unauthorized", err)
	}
	n, err := f.db.UpdateUser(context.Background(), mustUser(t, f, "late").ID, store.UserUpdate{RevokeSessionsAt: &t0})
	if err != nil || n != 0 {
		t.Fatalf("live sessions of the disabled account: %d (%v), want none", n, err)
	}
}

// changeRoleDuringLogin gives the account another role (as `ideapool
// users set-role` does: the change and the revocation of its sessions in
// one transaction) right before each of the first `times` sessions is
// created: the change lands while the login is being checked.
type changeRoleDuringLogin struct {
	store.Store
	mu    *sync.Mutex
	times *int
}

func (c changeRoleDuringLogin) CreateSession(ctx context.Context, s store.Session, rt store.RefreshToken, role store.Role) error {
	c.mu.Lock()
	change := *c.times > 0
	*c.times--
	c.mu.Unlock()
	if change {
		u, err := c.UserByID(ctx, s.UserID)
		if err != nil {
			return err
		}
		other := map[store.Role]store.Role{store.RoleAdmin: store.RoleMember, store.RoleMember: store.RoleAdmin}[u.Role]
		if _, err := c.UpdateUser(ctx, s.UserID, store.UserUpdate{Role: other, RevokeSessionsAt: &t0}); err != nil {
			return err
		}
	}
	return c.Store.CreateSession(ctx, s, rt, role)
}

// TestRoleChangeDuringLogin: a login or a client authentication that a
// role change overtakes gets a session of the new role, or fails cleanly
// when the role changes again at once; never a live session whose tokens
// carry the old role. On both backends: PostgreSQL checks the role under
// the lock the change takes.
func TestRoleChangeDuringLogin(t *testing.T) {
	tests := map[string]struct {
		changes  int         // role changes that land during the login
		want     apperr.Code // "" for a session
		wantRole store.Role  // of its tokens
	}{
		"demoted once: a session of the new role": {changes: 1, wantRole: store.RoleMember},
		"changed twice: refused, try again":       {changes: 2, want: apperr.Unavailable},
	}
	methods := map[string]func(t *testing.T, f, racy *fixture, owner accounts.Grant) (accounts.Grant, error){
		"password": func(t *testing.T, _, racy *fixture, _ accounts.Grant) (accounts.Grant, error) {
			return racy.svc.Login(request(addr), "boss", password1)
		},
		"client assertion": func(t *testing.T, f, racy *fixture, owner accounts.Grant) (accounts.Grant, error) {
			id, secret := f.client(t, owner)
			return racy.svc.AuthenticateClient(context.Background(), id, f.assertion(t, id, secret, time.Minute), issuer)
		},
	}
	for backend, newURL := range backends {
		for method, login := range methods {
			for name, tc := range tests {
				t.Run(backend+"/"+method+"/"+name, func(t *testing.T) {
					f := newReplica(t, newURL(t), clocktest.New(t0))
					owner := signupWith(t, f, "boss@example.com", "boss")
					if _, _, err := f.svc.SetRole(context.Background(), "boss", store.RoleAdmin); err != nil {
						t.Fatal(err)
					}
					times := tc.changes
					racy := newReplica(t, f.url, f.clock, withStore(func(s store.Store) accounts.Store {
						return changeRoleDuringLogin{Store: s, mu: &sync.Mutex{}, times: &times}
					}))
					g, err := login(t, f, racy, owner)
					if got := codeOrEmpty(err); got != tc.want {
						t.Fatalf("login overtaken by %d role changes: %v, want %q", tc.changes, err, tc.want)
					}
					current := mustUser(t, f, "boss").Role
					if err == nil {
						c, err := f.tokens.VerifyAccess(g.AccessToken)
						if err != nil || fmt.Sprint(c.Groups) != fmt.Sprint(accounts.Groups(tc.wantRole)) || current != tc.wantRole {
							t.Fatalf("groups %v (%v) while the role is %d; want those of role %d", c.Groups, err, current, tc.wantRole)
						}
						if !f.accessOK(g.AccessToken) {
							t.Fatalf("the session of the new role is not live")
						}
						if _, err := f.svc.Refresh(request(addr), g.RefreshToken, accounts.KeepRefreshToken); err != nil {
							t.Fatalf("refresh of the session of the new role: %v", err)
						}
					}
					// Every session left live carries the role the user has now:
					// revoke them all, and count those of the new grant only.
					live := 0
					if err == nil {
						live = 1
					}
					n, err := f.db.UpdateUser(context.Background(), owner.User.ID, store.UserUpdate{RevokeSessionsAt: &t0})
					if err != nil || n != live {
						t.Fatalf("live sessions after the login: %d (%v), want %d", n, err, live)
					}
				})
			}
		}
	}
}

// TestDisableAndEnable: disabling revokes every session at once, on every
// replica after its next poll; enabling lets the user sign in anew.
func TestDisableAndEnable(t *testing.T) {
	f := newFixture(t)
	other := newReplica(t, f.url, f.clock)
	g := signupWith(t, f, "ann@example.com", "ann")
	g2, err := f.svc.Login(request(addr), "ann", password1)
	if err != nil {
		t.Fatal(err)
	}
	bystander := f.signup(t, "bob@example.com")
	cli := accounts.WithActor(accounts.WithDialect(context.Background(), "cli"), "cli")
	u, n, err := f.svc.DisableUser(cli, "ANN@example.com")
	if err != nil || n != 2 || u.DisabledAt == nil {
		t.Fatalf("DisableUser = %v, %d sessions, %v; want disabled with 2 sessions revoked", u.DisabledAt, n, err)
	}
	if err := other.svc.SyncRevocations(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, gr := range []accounts.Grant{g, g2} {
		if _, err := other.svc.Refresh(request(addr), gr.RefreshToken, accounts.KeepRefreshToken); !errors.Is(err, accounts.ErrRefreshInvalid) {
			t.Errorf("refresh of a disabled user's session: %v, want invalid", err)
		}
		if other.accessOK(gr.AccessToken) {
			t.Errorf("another replica still accepts a disabled user's access token after its poll")
		}
	}
	if _, err := f.svc.Login(request(addr), "ann", password1); apperr.CodeOf(err) != apperr.Unauthorized {
		t.Fatalf("login of a disabled user: %v", err)
	}
	if !f.accessOK(bystander.AccessToken) {
		t.Errorf("another user's session ended too")
	}
	if _, err := f.svc.EnableUser(cli, "ann"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(request(addr), "ann", password1); err != nil {
		t.Fatalf("login after enabling: %v", err)
	}
	if _, err := f.svc.Refresh(request(addr), g.RefreshToken, accounts.KeepRefreshToken); !errors.Is(err, accounts.ErrRefreshInvalid) {
		t.Errorf("a session revoked by the disable works again after enabling: %v", err)
	}
	if _, _, err := f.svc.DisableUser(cli, "ghost"); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("disable an unknown user: %v, want not found", err)
	}
}

// TestSetRole: a role change shows in the groups of new tokens and ends
// the sessions whose tokens carry the old one.
func TestSetRole(t *testing.T) {
	f := newFixture(t)
	g := signupWith(t, f, "ann@example.com", "ann")
	if c, err := f.tokens.VerifyAccess(g.AccessToken); err != nil || fmt.Sprint(c.Groups) != "[member]" || c.Username != "ann" {
		t.Fatalf("claims of a member: %+v, %v; want groups [member], preferred_username ann", c, err)
	}
	cli := accounts.WithActor(context.Background(), "cli")
	steps := []struct {
		role        store.Role
		wantRevoked int
		wantGroups  string
	}{
		{role: store.RoleAdmin, wantRevoked: 1, wantGroups: "[admin]"},
		{role: store.RoleAdmin, wantRevoked: 0, wantGroups: "[admin]"},   // unchanged: nothing ends
		{role: store.RoleMember, wantRevoked: 2, wantGroups: "[member]"}, // the sessions of steps 0 and 1
	}
	for i, st := range steps {
		_, n, err := f.svc.SetRole(cli, "ann", st.role)
		if err != nil || n != st.wantRevoked {
			t.Fatalf("step %d: SetRole = %d, %v; want %d sessions revoked", i, n, err, st.wantRevoked)
		}
		if st.wantRevoked > 0 && f.accessOK(g.AccessToken) {
			t.Fatalf("step %d: the token of the old role is still accepted", i)
		}
		if g, err = f.svc.Login(request(addr), "ann", password1); err != nil {
			t.Fatal(err)
		}
		if c, err := f.tokens.VerifyAccess(g.AccessToken); err != nil || fmt.Sprint(c.Groups) != st.wantGroups {
			t.Fatalf("step %d: groups %v (%v), want %s", i, c.Groups, err, st.wantGroups)
		}
	}
	if _, _, err := f.svc.SetRole(cli, "ann", 3); apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("role 3: %v, want invalid", err)
	}
}

func signupWith(t testing.TB, f *fixture, email, username string) accounts.Grant {
	t.Helper()
	g, err := f.svc.Signup(request(addr), accounts.SignupRequest{Email: email, Name: "Test User", Password: password1, Username: username})
	if err != nil {
		t.Fatalf("signup %s: %v", email, err)
	}
	return g
}

func mustUser(t testing.TB, f *fixture, login string) store.User {
	t.Helper()
	u, err := f.db.UserByLogin(context.Background(), login)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func same(s string) func(int) string { return func(int) string { return s } }

// inOne64 gives each attempt another address of one IPv6 /64.
func inOne64(i int) string { return fmt.Sprintf("2001:db8:1:2:%x::%x", i, i+1) }

// spread gives each attempt another address.
func spread(i int) string { return fmt.Sprintf("198.51.100.%d", 10+i) }

// names are 20 names of no account.
func names(i int) string { return fmt.Sprintf("guess-%d@example.com", i%20) }

func codeOrEmpty(err error) apperr.Code {
	if err == nil {
		return ""
	}
	return apperr.CodeOf(err)
}
