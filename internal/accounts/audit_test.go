package accounts_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/accounts"
	"github.com/ideapool/ideapool/internal/store"
)

// TestAuditEvents runs every account event and checks that each is logged
// exactly once, with audit=true, its name, actor, subject, dialect, client
// address, request id and its own fields, and that no secret is logged.
func TestAuditEvents(t *testing.T) {
	f := newFixture(t)
	web := request(addr) // the Idea Pool dialect from addr, request id "req-192.0.2.1"
	rpc := accounts.WithRequestID(accounts.WithClientAddr(accounts.WithDialect(context.Background(), "jsonrpc"), "203.0.113.5"), "rpc-1")
	cli := accounts.WithActor(accounts.WithDialect(context.Background(), "cli"), "cli")
	var secrets []string // everything that must never reach the log
	keep := func(s ...string) { secrets = append(secrets, s...) }
	keep(password1, "Wrong-pass-1")

	var ann, login, rotated accounts.Grant
	var clientID, clientSecret string
	var clientGrant accounts.Grant
	annID := func() string { return ann.User.ID }

	// want is one expected audit line: its event and the fields it must
	// have (values given as they print); "$ann" stands for ann's id,
	// "$client" for the client's, "$login" for the sign-in's session.
	type want struct {
		event  string
		fields map[string]string
	}
	steps := []struct {
		name string
		run  func(t *testing.T)
		want []want
	}{
		{name: "signup", run: func(t *testing.T) {
			var err error
			ann, err = f.svc.Signup(web, accounts.SignupRequest{Email: "ann@example.com", Name: "Ann", Password: password1, Username: "ann"})
			if err != nil {
				t.Fatal(err)
			}
			keep(ann.AccessToken, ann.RefreshToken)
		}, want: []want{
			{accounts.EventUserCreated, map[string]string{"actor_id": "$ann", "subject_id": "$ann", "role": "1", "dialect": "ideapool", "client_addr": addr, "request_id": "req-" + addr}},
			{accounts.EventLoginSucceeded, map[string]string{"actor_id": "$ann", "subject_id": "$ann", "method": "signup"}},
		}},
		{name: "sign-in", run: func(t *testing.T) {
			var err error
			if login, err = f.svc.Login(web, "ann", password1); err != nil {
				t.Fatal(err)
			}
			keep(login.AccessToken, login.RefreshToken)
		}, want: []want{{accounts.EventLoginSucceeded, map[string]string{"actor_id": "$ann", "subject_id": "$ann", "method": "password", "client_addr": addr}}}},
		{name: "wrong password", run: func(*testing.T) { f.svc.Login(web, "ann", "Wrong-pass-1") }, //nolint:errcheck // on purpose
			want: []want{{accounts.EventLoginFailed, map[string]string{"actor_id": "", "subject_id": "$ann", "reason": "bad_password", "method": "password"}}}},
		{name: "unknown account", run: func(*testing.T) { f.svc.Login(web, "Wrong-pass-1", "Wrong-pass-1") }, //nolint:errcheck // a password typed as the name
			want: []want{{accounts.EventLoginFailed, map[string]string{"subject_id": "", "reason": "unknown_account"}}}},
		{name: "refresh reuse", run: func(t *testing.T) {
			var err error
			if rotated, err = f.svc.Refresh(web, login.RefreshToken, accounts.RotateRefreshToken); err != nil {
				t.Fatal(err)
			}
			keep(rotated.AccessToken, rotated.RefreshToken)
			f.clock.Advance(time.Minute)
			f.svc.Refresh(web, login.RefreshToken, accounts.RotateRefreshToken) //nolint:errcheck // reuse on purpose
		}, want: []want{
			{accounts.EventRefreshReuse, map[string]string{"subject_id": "$ann", "sid": "$login"}},
			{accounts.EventSessionRevoked, map[string]string{"subject_id": "$ann", "reason": "reuse", "sid": "$login"}},
		}},
		{name: "logout", run: func(t *testing.T) {
			if err := f.svc.Logout(web, ann.User.ID, ann.RefreshToken); err != nil {
				t.Fatal(err)
			}
			var err error
			if ann, err = f.svc.Login(web, "ann", password1); err != nil { // a session to work with from here on
				t.Fatal(err)
			}
			keep(ann.AccessToken, ann.RefreshToken)
		}, want: []want{
			{accounts.EventSessionRevoked, map[string]string{"actor_id": "$ann", "subject_id": "$ann", "reason": "logout"}},
			{accounts.EventLoginSucceeded, map[string]string{"method": "password"}},
		}},
		{name: "API client created", run: func(t *testing.T) {
			clientID, clientSecret = f.client(t, ann)
			keep(clientSecret)
		}, want: []want{{accounts.EventClientCreated, map[string]string{"actor_id": "$ann", "subject_id": "$client", "user_id": "$ann", "kind": "secret"}}}},
		{name: "client sign-in", run: func(t *testing.T) {
			a := f.assertion(t, clientID, clientSecret, time.Minute)
			keep(a)
			var err error
			if clientGrant, err = f.svc.AuthenticateClient(rpc, clientID, a, issuer); err != nil {
				t.Fatal(err)
			}
			keep(clientGrant.AccessToken, clientGrant.RefreshToken)
		}, want: []want{{accounts.EventLoginSucceeded, map[string]string{"subject_id": "$ann", "method": "client_assertion", "client_id": "$client",
			"dialect": "jsonrpc", "client_addr": "203.0.113.5", "request_id": "rpc-1"}}}},
		{name: "client sign-in refused", run: func(t *testing.T) {
			a := f.assertion(t, clientID, "not-the-secret-not-the-secret-xx", time.Minute)
			keep(a)
			f.svc.AuthenticateClient(rpc, clientID, a, issuer) //nolint:errcheck // refused on purpose
		}, want: []want{{accounts.EventLoginFailed, map[string]string{"subject_id": "$ann", "method": "client_assertion", "reason": "bad_signature", "client_id": "$client"}}}},
		{name: "API client revoked", run: func(t *testing.T) {
			if err := f.svc.RevokeClient(web, caller(ann), clientID); err != nil {
				t.Fatal(err)
			}
		}, want: []want{
			{accounts.EventClientRevoked, map[string]string{"actor_id": "$ann", "subject_id": "$client"}},
			{accounts.EventSessionRevoked, map[string]string{"reason": "client_revoked", "client_id": "$client", "sessions": "1"}},
		}},
		{name: "role changed", run: func(t *testing.T) {
			if _, _, err := f.svc.SetRole(cli, "ann", store.RoleAdmin); err != nil {
				t.Fatal(err)
			}
		}, want: []want{
			{accounts.EventUserRoleChanged, map[string]string{"actor_id": "cli", "subject_id": "$ann", "old_role": "1", "role": "2", "dialect": "cli", "client_addr": "", "request_id": ""}},
			{accounts.EventSessionRevoked, map[string]string{"actor_id": "cli", "reason": "role_changed", "sessions": "1"}},
		}},
		{name: "disabled", run: func(t *testing.T) {
			if _, err := f.svc.Login(web, "ann", password1); err != nil {
				t.Fatal(err)
			}
			if _, _, err := f.svc.DisableUser(cli, "ann"); err != nil {
				t.Fatal(err)
			}
		}, want: []want{
			{accounts.EventLoginSucceeded, map[string]string{"method": "password"}},
			{accounts.EventUserDisabled, map[string]string{"actor_id": "cli", "subject_id": "$ann"}},
			{accounts.EventSessionRevoked, map[string]string{"actor_id": "cli", "reason": "user_disabled", "sessions": "1"}},
		}},
		{name: "enabled", run: func(t *testing.T) {
			if _, err := f.svc.EnableUser(cli, "ann"); err != nil {
				t.Fatal(err)
			}
		}, want: []want{{accounts.EventUserEnabled, map[string]string{"actor_id": "cli", "subject_id": "$ann"}}}},
	}

	seen := 0
	for _, st := range steps {
		st.run(t)
		all := f.logs.lines(t)
		var got []map[string]any
		for _, l := range all[seen:] {
			if l["audit"] == true {
				got = append(got, l)
			}
		}
		seen = len(all)
		if len(got) != len(st.want) {
			t.Fatalf("%s: %d audit lines, want %d: %v", st.name, len(got), len(st.want), got)
		}
		for i, w := range st.want {
			line := got[i]
			if line["event"] != w.event {
				t.Fatalf("%s: line %d is %v, want %s", st.name, i, line["event"], w.event)
			}
			for _, k := range []string{"actor_id", "subject_id", "dialect", "client_addr", "request_id"} {
				if _, ok := line[k]; !ok {
					t.Errorf("%s: %s lacks %s: %v", st.name, w.event, k, line)
				}
			}
			for k, v := range w.fields {
				v = strings.NewReplacer("$ann", annID(), "$client", clientID, "$login", login.SessionID).Replace(v)
				if got := fmt.Sprint(line[k]); line[k] == nil && v != "" || line[k] != nil && got != v {
					t.Errorf("%s: %s: %s = %q, want %q", st.name, w.event, k, got, v)
				}
			}
		}
	}
	text := f.logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("the log holds a secret (%.12s…)", s)
		}
	}
}
