package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/ideapool/ideapool/internal/store"
)

// newAPIClient builds an HS256 client of userID created at created; opts
// adjust it.
func newAPIClient(id, userID string, created time.Time, opts ...func(*store.APIClient)) store.APIClient {
	c := store.APIClient{
		ID:        id,
		UserID:    userID,
		Name:      "client " + id,
		Secret:    secret32("client " + id),
		CreatedAt: created,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// withPublicJWK makes the client one with a registered key instead of a
// shared secret.
func withPublicJWK(c *store.APIClient) {
	c.Secret = nil
	c.PublicJWK = []byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`)
}

func mustCreateAPIClient(t *testing.T, s store.Store, c store.APIClient) store.APIClient {
	t.Helper()
	if err := s.CreateAPIClient(t.Context(), c); err != nil {
		t.Fatalf("CreateAPIClient(%s): %v", c.ID, err)
	}
	return c
}

func testAPIClients(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("create and get", func(t *testing.T) {
		ctx, s := fresh(t, open)
		u := mustCreateUser(t, s, newUser("ann"))
		mustCreateAPIClient(t, s, newAPIClient("taken", u.ID, base))

		tests := map[string]struct {
			client    store.APIClient
			wantErr   error  // nil: stored and read back as given
			wantField string // ConflictError.Field wanted with ErrConflict
			anyErr    bool   // an error outside the sentinels
		}{
			"shared secret":          {client: newAPIClient("hs", u.ID, base)},
			"public key":             {client: newAPIClient("jwk", u.ID, base, withPublicJWK)},
			"created revoked":        {client: newAPIClient("old", u.ID, base, func(c *store.APIClient) { c.RevokedAt = ptr(at(time.Hour)) })},
			"duplicate id":           {client: newAPIClient("taken", u.ID, at(time.Minute)), wantErr: store.ErrConflict, wantField: "id"},
			"unknown user":           {client: newAPIClient("orphan", "user-nobody", base), wantErr: store.ErrNotFound},
			"neither secret nor key": {client: newAPIClient("none", u.ID, base, func(c *store.APIClient) { c.Secret = nil }), anyErr: true},
			"both secret and key": {client: newAPIClient("both", u.ID, base, func(c *store.APIClient) {
				withPublicJWK(c)
				c.Secret = secret32("both")
			}), anyErr: true},
		}
		for name, tc := range tests {
			err := s.CreateAPIClient(ctx, tc.client)
			switch {
			case tc.anyErr:
				if err == nil {
					t.Fatalf("%s: CreateAPIClient succeeded, want an error", name)
				}
			case tc.wantField != "":
				var ce *store.ConflictError
				if !errors.As(err, &ce) || ce.Field != tc.wantField {
					t.Fatalf("%s: CreateAPIClient: error %v, want ConflictError{Field: %q}", name, err, tc.wantField)
				}
				continue
			default:
				wantErr(t, name+": CreateAPIClient", err, tc.wantErr)
			}
			got, err := s.APIClientByID(ctx, tc.client.ID)
			if tc.wantErr != nil || tc.anyErr {
				wantErr(t, name+": APIClientByID", err, store.ErrNotFound)
				continue
			}
			wantErr(t, name+": APIClientByID", err, nil)
			wantEqual(t, name, got, storedAPIClient(tc.client))
		}

		_, err := s.APIClientByID(ctx, "nope")
		wantErr(t, "APIClientByID unknown", err, store.ErrNotFound)
		got, err := s.APIClientByID(ctx, "taken")
		wantErr(t, "APIClientByID taken", err, nil)
		wantEqual(t, "first of the duplicates kept", got, storedAPIClient(newAPIClient("taken", u.ID, base)))
	})

	t.Run("revoking a client ends the sessions it started", func(t *testing.T) {
		ctx, s := fresh(t, open)
		ann := mustCreateUser(t, s, newUser("ann"))
		c := mustCreateAPIClient(t, s, newAPIClient("c1", ann.ID, base))
		other := mustCreateAPIClient(t, s, newAPIClient("c2", ann.ID, base))
		byClient, rt1 := newSession("s-client", ann.ID, time.Hour)
		byClient.ClientID = c.ID
		byOther, rt2 := newSession("s-other-client", ann.ID, time.Hour)
		byOther.ClientID = other.ID
		byPassword, rt3 := newSession("s-password", ann.ID, time.Hour)
		mustCreateSession(t, s, byClient, rt1)
		mustCreateSession(t, s, byOther, rt2)
		mustCreateSession(t, s, byPassword, rt3)
		n, err := s.RevokeAPIClient(ctx, ann.ID, c.ID, at(time.Minute))
		wantErr(t, "RevokeAPIClient", err, nil)
		wantEqual(t, "sessions revoked", n, 1)
		for _, tc := range []struct {
			rt      store.RefreshToken
			revoked bool
		}{{rt1, true}, {rt2, false}, {rt3, false}} {
			_, sess, err := s.RefreshTokenByHash(ctx, tc.rt.Hash)
			wantErr(t, "RefreshTokenByHash "+tc.rt.SessionID, err, nil)
			if got := sess.RevokedAt != nil; got != tc.revoked {
				t.Errorf("session %s revoked %v, want %v", sess.ID, got, tc.revoked)
			}
		}
	})

	t.Run("list newest first, revoked included", func(t *testing.T) {
		ctx, s := fresh(t, open)
		ann := mustCreateUser(t, s, newUser("ann"))
		bob := mustCreateUser(t, s, newUser("bob"))
		c1 := mustCreateAPIClient(t, s, newAPIClient("c1", ann.ID, base))
		c2 := mustCreateAPIClient(t, s, newAPIClient("c2", ann.ID, at(time.Minute), withPublicJWK))
		c3 := mustCreateAPIClient(t, s, newAPIClient("c3", ann.ID, at(time.Minute))) // same time: higher id first
		c4 := mustCreateAPIClient(t, s, newAPIClient("c4", ann.ID, at(2*time.Minute)))
		b1 := mustCreateAPIClient(t, s, newAPIClient("b1", bob.ID, at(time.Hour)))
		_, err := s.RevokeAPIClient(ctx, ann.ID, c4.ID, at(3*time.Minute))
		wantErr(t, "RevokeAPIClient", err, nil)
		c4.RevokedAt = ptr(at(3 * time.Minute))

		tests := map[string]struct {
			userID string
			want   []store.APIClient
		}{
			"ann":          {userID: ann.ID, want: []store.APIClient{c4, c3, c2, c1}},
			"bob":          {userID: bob.ID, want: []store.APIClient{b1}},
			"unknown user": {userID: "user-nobody", want: []store.APIClient{}},
		}
		for name, tc := range tests {
			got, err := s.ListAPIClients(ctx, tc.userID)
			wantErr(t, name+": ListAPIClients", err, nil)
			want := make([]store.APIClient, len(tc.want))
			for i, c := range tc.want {
				want[i] = storedAPIClient(c)
			}
			wantEqual(t, name, got, want)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		ctx, s := fresh(t, open)
		ann := mustCreateUser(t, s, newUser("ann"))
		bob := mustCreateUser(t, s, newUser("bob"))
		c := mustCreateAPIClient(t, s, newAPIClient("c1", ann.ID, base))

		// Steps run in order, each on what the previous ones left.
		steps := []struct {
			name    string
			userID  string
			id      string
			at      time.Time
			wantErr error
		}{
			{name: "by another user", userID: bob.ID, id: c.ID, at: at(time.Minute), wantErr: store.ErrNotFound},
			{name: "unknown client", userID: ann.ID, id: "nope", at: at(time.Minute), wantErr: store.ErrNotFound},
			{name: "by its owner", userID: ann.ID, id: c.ID, at: at(2 * time.Minute)},
			{name: "twice", userID: ann.ID, id: c.ID, at: at(3 * time.Minute), wantErr: store.ErrNotFound},
		}
		for _, st := range steps {
			_, err := s.RevokeAPIClient(ctx, st.userID, st.id, st.at)
			wantErr(t, st.name, err, st.wantErr)
		}
		got, err := s.APIClientByID(ctx, c.ID)
		wantErr(t, "APIClientByID", err, nil)
		c.RevokedAt = ptr(at(2 * time.Minute)) // the first revocation
		wantEqual(t, "revoked client", got, storedAPIClient(c))
	})
}
