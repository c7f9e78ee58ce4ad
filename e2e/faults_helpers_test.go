package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The fault tests drive the server into states where a 503 or a dropped
// connection is the right answer, so they talk to it through rawDo, which
// returns whatever came back instead of failing on a 5xx like server.do.

// loadClient is for load generators: its own connection pool, so a killed
// server's dead connections never reach the shared httpClient.
func loadClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// rawResult is one exchange: err is a transport error (no answer at all).
type rawResult struct {
	Status  int
	Header  http.Header
	Body    []byte
	Err     error
	Elapsed time.Duration
}

func (r rawResult) String() string {
	if r.Err != nil {
		return fmt.Sprintf("error %v after %v", r.Err, r.Elapsed.Round(time.Millisecond))
	}
	b := r.Body
	if len(b) > 300 {
		b = append(b[:300:300], "..."...)
	}
	return fmt.Sprintf("%d %s (after %v)", r.Status, b, r.Elapsed.Round(time.Millisecond))
}

// rawDo sends one request; body is JSON-encoded unless it is []byte or a
// string (sent as is, as application/json). headers are name, value pairs.
func rawDo(c *http.Client, method, u string, body any, headers ...string) rawResult {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return rawResult{Err: err}
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return rawResult{Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return rawResult{Err: err, Elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	r := rawResult{Status: resp.StatusCode, Header: resp.Header, Body: data, Err: err, Elapsed: time.Since(start)}
	return r
}

// jsonField returns a string member of a JSON object body ("" if absent).
func jsonField(body []byte, name string) string {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	s, _ := m[name].(string)
	return s
}

// counter counts events and keeps the first few descriptions.
type counter struct {
	n     atomic.Int64
	first chan string
}

func newCounter() *counter { return &counter{first: make(chan string, 5)} }

func (c *counter) add(format string, args ...any) {
	c.n.Add(1)
	select {
	case c.first <- fmt.Sprintf(format, args...):
	default:
	}
}

// report fails t if anything was counted, showing the first few.
func (c *counter) report(t testing.TB, what string) {
	t.Helper()
	if n := c.n.Load(); n > 0 {
		close(c.first)
		var ex []string
		for s := range c.first {
			ex = append(ex, "  "+s)
		}
		t.Errorf("%d %s; first ones:\n%s", n, what, strings.Join(ex, "\n"))
	}
}

// postgresURL is the run's PostgreSQL server (hack/with-postgres.sh), or ""
// when the suite runs without one.
func postgresURL() string { return os.Getenv("IDEAPOOL_TEST_POSTGRES_URL") }

var dbSeq atomic.Int64

// freshPostgres creates an empty database on the run's PostgreSQL server and
// returns its URL; it is dropped when the test ends. Without a server the
// test is skipped (make test always has one).
func freshPostgres(t *testing.T) string {
	t.Helper()
	base := postgresURL()
	if base == "" {
		t.Skip("IDEAPOOL_TEST_POSTGRES_URL is not set: run through hack/with-postgres.sh (make test does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer conn.Close(context.Background())
	name := fmt.Sprintf("e2e_faults_%d_%d", os.Getpid(), dbSeq.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("CREATE DATABASE %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("dropping %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// gauge scrapes one unlabelled sample from the metrics listener.
func gauge(c *http.Client, metricsBase, name string) (float64, error) {
	r := rawDo(c, "GET", metricsBase+"/metrics", nil)
	if r.Err != nil {
		return 0, r.Err
	}
	if r.Status != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %d", r.Status)
	}
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no sample %s in /metrics", name)
}

// waitFor polls cond every 50 ms until it holds or within passes; it
// returns how long it took and whether it held.
func waitFor(within time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
