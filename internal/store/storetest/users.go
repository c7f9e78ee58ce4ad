package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

func testUsers(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("create and find", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann", func(u *store.User) {
			// Another zone and nanoseconds: stored as UTC microseconds.
			u.CreatedAt = base.In(time.FixedZone("X", 5*3600))
			u.DisabledAt = ptr(at(time.Hour))
		}))
		want := storedUser(u)
		finders := map[string]func() (store.User, error){
			"UserByID":             func() (store.User, error) { return s.UserByID(ctx, u.ID) },
			"UserByLogin username": func() (store.User, error) { return s.UserByLogin(ctx, u.Username) },
			"UserByLogin email":    func() (store.User, error) { return s.UserByLogin(ctx, u.Email) },
		}
		for name, find := range finders {
			got, err := find()
			wantErr(t, name, err, nil)
			wantEqual(t, name, got, want)
			if got.CreatedAt.Location() != time.UTC {
				t.Fatalf("%s: CreatedAt in %v, want UTC", name, got.CreatedAt.Location())
			}
		}
	})

	t.Run("zero role is member", func(t *testing.T) {
		ctx, s := fresh(t, open)
		mustCreateUser(t, s, newUser("ann", func(u *store.User) { u.Role = 0 }))
		got, err := s.UserByID(ctx, "user-ann")
		wantErr(t, "UserByID", err, nil)
		wantEqual(t, "role", got.Role, store.RoleMember)
	})

	t.Run("login prefers username over another user's email", func(t *testing.T) {
		ctx, s := fresh(t, open)
		// Odd but allowed by the schema: ann's username is bob's email.
		mustCreateUser(t, s, newUser("bob"))
		mustCreateUser(t, s, newUser("ann", func(u *store.User) { u.Username = "bob@example.com" }))
		got, err := s.UserByLogin(ctx, "bob@example.com")
		wantErr(t, "UserByLogin", err, nil)
		wantEqual(t, "id", got.ID, "user-ann")
	})

	conflicts := map[string]struct {
		first, second store.User
		field         string // ConflictError.Field wanted
	}{
		"same email": {
			first:  newUser("ann"),
			second: newUser("bob", func(u *store.User) { u.Email = "ann@example.com" }),
			field:  "email",
		},
		"same username": {
			first:  newUser("ann"),
			second: newUser("bob", func(u *store.User) { u.Username = "ann" }),
			field:  "username",
		},
		"username taken as the default username of an email user": {
			first:  newUser("ann", func(u *store.User) { u.Username = u.Email }),
			second: newUser("bob", func(u *store.User) { u.Username = "ann@example.com" }),
			field:  "username",
		},
	}
	for name, tc := range conflicts {
		t.Run("conflict/"+name, func(t *testing.T) {
			ctx, s := fresh(t, open)
			mustCreateUser(t, s, tc.first)
			err := s.CreateUser(ctx, tc.second)
			wantErr(t, "CreateUser", err, store.ErrConflict)
			var ce *store.ConflictError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("CreateUser: error %v, want ConflictError{Field: %q}", err, tc.field)
			}
			users, err := s.ListUsers(ctx)
			wantErr(t, "ListUsers", err, nil)
			wantEqual(t, "users", users, []store.User{storedUser(tc.first)})
		})
	}

	t.Run("not found", func(t *testing.T) {
		ctx, s := fresh(t, open)
		mustCreateUser(t, s, newUser("ann"))
		calls := map[string]func() error{
			"UserByID":    func() error { _, err := s.UserByID(ctx, "user-nobody"); return err },
			"UserByLogin": func() error { _, err := s.UserByLogin(ctx, "nobody"); return err },
			"UpdateUser": func() error {
				_, err := s.UpdateUser(ctx, "user-nobody", store.UserUpdate{Role: store.RoleAdmin, RevokeSessionsAt: ptr(base)})
				return err
			},
		}
		for name, call := range calls {
			wantErr(t, name, call(), store.ErrNotFound)
		}
	})

	t.Run("list oldest first", func(t *testing.T) {
		ctx, s := fresh(t, open)
		users, err := s.ListUsers(ctx)
		wantErr(t, "ListUsers empty", err, nil)
		wantEqual(t, "count", len(users), 0)
		c := mustCreateUser(t, s, newUser("c", func(u *store.User) { u.CreatedAt = at(2 * time.Microsecond) }))
		a := mustCreateUser(t, s, newUser("a", func(u *store.User) { u.CreatedAt = at(time.Microsecond) }))
		b := mustCreateUser(t, s, newUser("b", func(u *store.User) { u.CreatedAt = at(time.Microsecond) }))
		users, err = s.ListUsers(ctx)
		wantErr(t, "ListUsers", err, nil)
		wantEqual(t, "users", users, []store.User{storedUser(a), storedUser(b), storedUser(c)})
	})

	t.Run("update", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		other := mustCreateUser(t, s, newUser("bob"))
		for _, id := range []string{"ann-1", "ann-2", "ann-old"} {
			sess, rt := newSession(id, u.ID, time.Hour)
			mustCreateSession(t, s, sess, rt)
		}
		wantErr(t, "RevokeSession ann-old", s.RevokeSession(ctx, "ann-old", at(time.Second)), nil)
		bobSess, bobRT := newSession("bob-1", other.ID, time.Hour)
		mustCreateSession(t, s, bobSess, bobRT)

		// Steps run in order, each on what the previous ones left.
		steps := []struct {
			name        string
			update      store.UserUpdate
			wantErr     bool
			wantRevoked int
			want        func(u *store.User) // what the user becomes
			revokedAt   map[string]*time.Time
		}{
			{name: "role only", update: store.UserUpdate{Role: store.RoleAdmin},
				want: func(u *store.User) { u.Role = store.RoleAdmin }},
			{name: "disable and revoke", update: store.UserUpdate{DisabledAt: ptr(at(time.Minute)), RevokeSessionsAt: ptr(at(time.Minute))},
				wantRevoked: 2, // ann-old keeps its first revocation
				want:        func(u *store.User) { u.DisabledAt = ptr(at(time.Minute)) },
				revokedAt:   map[string]*time.Time{"ann-1": ptr(at(time.Minute)), "ann-2": ptr(at(time.Minute)), "ann-old": ptr(at(time.Second)), "bob-1": nil}},
			{name: "enable", update: store.UserUpdate{Enable: true},
				want: func(u *store.User) { u.DisabledAt = nil }},
			{name: "role and revoke again: nothing live is left", update: store.UserUpdate{Role: store.RoleMember, RevokeSessionsAt: ptr(at(time.Hour))},
				want:      func(u *store.User) { u.Role = store.RoleMember },
				revokedAt: map[string]*time.Time{"ann-1": ptr(at(time.Minute)), "bob-1": nil}},
			{name: "disable and enable at once", update: store.UserUpdate{DisabledAt: ptr(base), Enable: true}, wantErr: true,
				want: func(*store.User) {}},
		}
		for _, st := range steps {
			n, err := s.UpdateUser(ctx, u.ID, st.update)
			if st.wantErr {
				if err == nil {
					t.Fatalf("%s: no error", st.name)
				}
			} else {
				wantErr(t, st.name, err, nil)
				wantEqual(t, st.name+": revoked", n, st.wantRevoked)
			}
			st.want(&u)
			got, err := s.UserByID(ctx, u.ID)
			wantErr(t, st.name+": UserByID", err, nil)
			wantEqual(t, st.name+": user", got, storedUser(u))
			for sid, want := range st.revokedAt {
				_, sess, err := s.RefreshTokenByHash(ctx, []byte("rt-"+sid))
				wantErr(t, st.name+": session "+sid, err, nil)
				wantEqual(t, st.name+": session "+sid+" revoked at", sess.RevokedAt, storedPtr(want))
			}
		}
		got, err := s.UserByID(ctx, other.ID)
		wantErr(t, "UserByID other", err, nil)
		wantEqual(t, "other user untouched", got, storedUser(other))
	})
}
