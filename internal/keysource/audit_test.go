package keysource_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ideapool/ideapool/internal/keyset"
	"github.com/ideapool/ideapool/internal/keysource"
)

// auditLine is the part of an audit log line the tests look at.
type auditLine struct {
	Msg         string `json:"msg"`
	Audit       bool   `json:"audit"`
	Event       string `json:"event"`
	KID         string `json:"kid"`
	PreviousKID string `json:"previous_kid"`
	ActorID     string `json:"actor_id"`
	SubjectID   string `json:"subject_id"`
}

// auditLines parses the JSON log lines with audit: true.
func auditLines(t testing.TB, logs string) []auditLine {
	t.Helper()
	var out []auditLine
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var l auditLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if l.Audit {
			out = append(out, l)
		}
	}
	return out
}

func hasAudit(lines []auditLine, event, kid string) bool {
	for _, l := range lines {
		if l.Event == event && l.KID == kid {
			return true
		}
	}
	return false
}

// TestFileAudit: what the server writes to its own key file is audited,
// one line per key and event, and never with key material.
func TestFileAudit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	clk := newClock()
	f, logs := newFile(t, path, clk, newGen(11))
	ks, err := f.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	first, next := ks.Keys[0], ks.Keys[1]
	// Past the first key's removal: the rotation removes it.
	clk.Set(*first.RemoveAfter)
	if _, err := f.Load(context.Background()); err != nil {
		t.Fatal(err)
	}

	lines := auditLines(t, logs.String())
	for _, want := range []struct{ event, kid string }{
		{"key_generated", first.ID},
		{"key_generated", next.ID},
		{"key_retired", first.ID},
		{"key_removed", first.ID},
	} {
		if !hasAudit(lines, want.event, want.kid) {
			t.Errorf("no audit line %s for %s:\n%s", want.event, want.kid, logs)
		}
	}
	for _, l := range lines {
		if l.KID == "" || !strings.HasPrefix(l.Event, "key_") || l.ActorID != keysource.AuditActor || l.SubjectID != l.KID {
			t.Errorf("audit line without a kid, a key_ event, the actor %q or the kid as subject: %+v", keysource.AuditActor, l)
		}
	}
	for _, k := range ks.Keys {
		var jwk map[string]any
		if err := json.Unmarshal(k.Private, &jwk); err != nil {
			t.Fatal(err)
		}
		if d, _ := jwk["d"].(string); d == "" || strings.Contains(logs.String(), d) {
			t.Fatal("private key material in the logs")
		}
	}
}

// TestSigningWatch: a change of the signing key is one audit line naming
// the new and the previous kid; the key at start, an unchanged key and a
// moment with no signing key are not reported.
func TestSigningWatch(t *testing.T) {
	var mu sync.Mutex
	active := "kid-a"
	set := func(kid string) { mu.Lock(); active = kid; mu.Unlock() }
	logs := &syncBuffer{}
	w := keysource.NewSigningWatch(func() string { mu.Lock(); defer mu.Unlock(); return active },
		slog.New(slog.NewJSONHandler(logs, nil)))

	steps := []struct {
		active string
		want   []auditLine // the audit lines of this step
	}{
		{active: "kid-a"},
		{active: "kid-b", want: []auditLine{{KID: "kid-b", PreviousKID: "kid-a"}}},
		{active: "kid-b"},
		{active: ""},
		{active: "kid-b"},
		{active: "kid-c", want: []auditLine{{KID: "kid-c", PreviousKID: "kid-b"}}},
	}
	seen := 0
	for i, st := range steps {
		set(st.active)
		w.Check()
		lines := auditLines(t, logs.String())
		got := lines[seen:]
		seen = len(lines)
		if len(got) != len(st.want) {
			t.Fatalf("step %d (%q): %d audit lines, want %d:\n%s", i, st.active, len(got), len(st.want), logs)
		}
		for j, l := range got {
			if l.Event != keyset.Activated.AuditEvent() || l.KID != st.want[j].KID || l.PreviousKID != st.want[j].PreviousKID ||
				l.ActorID != keysource.AuditActor || l.SubjectID != l.KID {
				t.Errorf("step %d: audit line %+v, want key_activated %+v", i, l, st.want[j])
			}
		}
	}
}
