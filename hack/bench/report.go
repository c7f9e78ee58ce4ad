package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// row is one line of the table, and of the JSON file.
type row struct {
	Workload          string   `json:"workload"`
	Backend           string   `json:"backend"`
	RequestsPerSecond *float64 `json:"requests_per_second,omitempty"`
	P50Ms             *float64 `json:"p50_ms,omitempty"`
	P99Ms             *float64 `json:"p99_ms,omitempty"`
	Requests          int64    `json:"requests,omitempty"`
	Errors            int64    `json:"errors"`
	// Baseline names what the workload is compared with and its figure.
	Baseline      string   `json:"baseline,omitempty"`
	BaselineValue *float64 `json:"baseline_value,omitempty"`
	// Ratio is requests/s over the baseline's, or with Unit "x" p99 over
	// the baseline's p99.
	Ratio *float64 `json:"ratio,omitempty"`
	// Value is a measured quantity in Unit (memory, start time).
	Value        *float64 `json:"value,omitempty"`
	Unit         string   `json:"unit,omitempty"`
	Target       string   `json:"target,omitempty"`
	Met          *bool    `json:"met,omitempty"`
	Notes        []string `json:"notes,omitempty"`
	ErrorSamples []string `json:"error_samples,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadRow fills the throughput columns from r.
func loadRow(name string, r loadResult) row {
	return row{Workload: name, RequestsPerSecond: ptr(r.rate()),
		P50Ms: ptr(millis(r.latencies.quantile(0.50))), P99Ms: ptr(millis(r.latencies.quantile(0.99))),
		Requests: r.ops, Errors: r.errors, ErrorSamples: r.samples}
}

// versus sets the baseline to base's throughput and the ratio to it.
func (r *row) versus(name string, base loadResult) {
	r.Baseline = fmt.Sprintf("%s %s/s", name, fmtRate(base.rate()))
	r.BaselineValue = ptr(base.rate())
	if base.rate() > 0 && r.RequestsPerSecond != nil {
		r.Ratio = ptr(*r.RequestsPerSecond / base.rate())
	} else {
		r.Ratio = ptr(0.0)
	}
}

// ok is true when the row measured something without errors: a target is
// never met by a run that failed requests.
func (r *row) ok() bool { return r.Errors == 0 && r.Requests > 0 }

func (r row) ratioText() string {
	switch {
	case r.Value != nil:
		return strconv.FormatFloat(*r.Value, 'f', 1, 64) + " " + r.Unit
	case r.Ratio != nil && r.Unit == "x":
		return strconv.FormatFloat(*r.Ratio, 'f', 1, 64) + "x"
	case r.Ratio != nil:
		return strconv.FormatFloat(*r.Ratio*100, 'f', 0, 64) + "%"
	}
	return "—"
}

func (r row) metText() string {
	switch {
	case r.Met == nil:
		return "—"
	case *r.Met:
		return "yes"
	}
	return "NO"
}

func (r row) summary() string {
	return fmt.Sprintf("%s/s p50 %s p99 %s errors %d ratio %s %s",
		orDash(r.RequestsPerSecond, fmtRate), orDash(r.P50Ms, fmtMs), orDash(r.P99Ms, fmtMs), r.Errors, r.ratioText(), r.metText())
}

func orDash(v *float64, f func(float64) string) string {
	if v == nil {
		return "—"
	}
	return f(*v)
}

// fmtRate writes a rate with thousands separators, one decimal below 100.
func fmtRate(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
}

func fmtDur(d time.Duration) string { return fmtMs(millis(d)) }

func joinComma(s []string) string { return strings.Join(s, ", ") }

// report is the JSON document: the environment and every row.
type report struct {
	Started          time.Time `json:"started"`
	ElapsedSeconds   float64   `json:"elapsed_seconds"`
	GoVersion        string    `json:"go_version"`
	GOMAXPROCS       int       `json:"gomaxprocs"`
	NumCPU           int       `json:"num_cpu"`
	Warmup           string    `json:"warmup"`
	Duration         string    `json:"duration"`
	Connections      int       `json:"connections"`
	LoginConnections int       `json:"login_connections"`
	KeyAlgorithm     string    `json:"key_algorithm"`
	ServerArgs       []string  `json:"server_args,omitempty"`
	ServerGODEBUG    string    `json:"server_godebug,omitempty"`
	Rows             []row     `json:"rows"`
}

func (rep report) header() string {
	return fmt.Sprintf("ideapool bench, %s, %s: GOMAXPROCS=%d, %d CPUs, shared by the load generator and the server (and whatever else runs here)\n"+
		"each workload: %s warm-up, %s measured, closed loop on loopback; %d connections (logins %d); key %s; server: the plain binary, no environment%s",
		rep.Started.Format(time.RFC3339), rep.GoVersion, rep.GOMAXPROCS, rep.NumCPU,
		rep.Warmup, rep.Duration, rep.Connections, rep.LoginConnections, rep.KeyAlgorithm, godebugNote(rep.ServerGODEBUG))
}

// writeTable prints the header, the table (Markdown, so that it can be
// pasted into the README as it is) and the notes.
func (rep report) writeTable(w io.Writer) error {
	cells := [][]string{{"workload", "backend", "requests/s", "p50", "p99", "errors", "baseline", "ratio", "target", "met?"}}
	for _, r := range rep.Rows {
		cells = append(cells, []string{r.Workload, r.Backend,
			orDash(r.RequestsPerSecond, fmtRate), orDash(r.P50Ms, fmtMs), orDash(r.P99Ms, fmtMs), strconv.FormatInt(r.Errors, 10),
			orEmpty(r.Baseline), r.ratioText(), orEmpty(r.Target), r.metText()})
	}
	// Numbers right, words left.
	right := []bool{false, false, true, true, true, true, false, true, false, false}
	width := make([]int, len(cells[0]))
	for _, line := range cells {
		for i, c := range line {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	b.WriteString(rep.header() + "\n\n")
	for n, line := range cells {
		for i, c := range line {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if right[i] {
				c = pad + c
			} else {
				c += pad
			}
			b.WriteString("| " + c + " ")
		}
		b.WriteString("|\n")
		if n == 0 {
			for i := range line {
				if right[i] {
					b.WriteString("|" + strings.Repeat("-", width[i]+1) + ":")
				} else {
					b.WriteString("|" + strings.Repeat("-", width[i]+2))
				}
			}
			b.WriteString("|\n")
		}
	}
	b.WriteString("\n")
	met, goals := 0, 0
	var missed []string
	for _, r := range rep.Rows {
		if r.Met != nil {
			goals++
			if *r.Met {
				met++
			} else {
				missed = append(missed, r.Backend+" "+r.Workload)
			}
		}
	}
	fmt.Fprintf(&b, "goals met: %d of %d", met, goals)
	if len(missed) > 0 {
		fmt.Fprintf(&b, "; NOT met: %s", strings.Join(missed, ", "))
	}
	b.WriteString("\n\n")
	for _, r := range rep.Rows {
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s, %s: %s\n", r.Backend, r.Workload, n)
		}
		for _, s := range r.ErrorSamples {
			fmt.Fprintf(&b, "- %s, %s: error: %s\n", r.Backend, r.Workload, s)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orEmpty(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func (rep report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // results are not secret
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil { //nolint:gosec // results are not secret
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func godebugNote(g string) string {
	if g == "" {
		return ""
	}
	return " but GODEBUG=" + g
}
