package main

import (
	"fmt"
	"html"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// The plots of bench-scale, as SVG written here (no plotting tool): lines
// of a figure against the database's size.

func goVersion() string { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH }
func numCPU() int       { return runtime.NumCPU() }

// series is one line: y values at the x positions of the plot.
type series struct {
	name   string
	dashed bool
	color  string
	points [][2]float64 // (x index, y)
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"}

// svgPlot draws series over categorical x positions labelled xs, with y
// from 0 to yMax, an optional horizontal goal line, and a legend.
func svgPlot(title, yLabel string, xs []string, ss []series, yMax, goal float64, goalLabel string) []byte {
	const w, h, left, right, top, bottom = 900.0, 440.0, 70.0, 330.0, 40.0, 60.0
	pw, ph := w-left-right, h-top-bottom
	x := func(i float64) float64 {
		if len(xs) == 1 {
			return left + pw/2
		}
		return left + i*pw/float64(len(xs)-1)
	}
	y := func(v float64) float64 { return top + ph - min(v, yMax)/yMax*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Grid and y ticks.
	step := niceStep(yMax / 5)
	for v := 0.0; v <= yMax+1e-9; v += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), left+pw, y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, strconv.FormatFloat(v, 'f', -1, 64))
	}
	for i, l := range xs {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x(float64(i)), top, x(float64(i)), top+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(float64(i)), top+ph+18, html.EscapeString(l))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">ideas in the database (a tenth as many users, as many sessions); solid SQLite, dashed PostgreSQL</text>`+"\n", left+pw/2, h-14)
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", top+ph/2, html.EscapeString(yLabel))
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	if goal > 0 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-dasharray="2 3"/>`+"\n", left, y(goal), left+pw, y(goal))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left+pw-4, y(goal)-4, html.EscapeString(goalLabel))
	}
	for n, s := range ss {
		var pts []string
		for _, p := range s.points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p[0]), y(p[1])))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.color, dash)
		for _, p := range s.points {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(p[0]), y(p[1]), s.color)
		}
		ly := top + 10 + float64(n)*18
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", left+pw+14, ly, left+pw+40, ly, s.color, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+pw+46, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func niceStep(raw float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000} {
		if s >= raw {
			return s
		}
	}
	return raw
}

// steps returns the distinct sizes (in ideas) of the results, ascending,
// and their labels.
func (rep scaleReport) steps() ([]int, []string) {
	var sizes []int
	for _, r := range rep.Results {
		if r.Workload != "cleanup of expired sessions" && !slices.Contains(sizes, r.Ideas) {
			sizes = append(sizes, r.Ideas)
		}
	}
	slices.Sort(sizes)
	labels := make([]string, len(sizes))
	for i, s := range sizes {
		labels[i] = fmtCount(s)
	}
	return sizes, labels
}

func fmtCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// plotThroughput: each workload's requests/s as a share of the same
// workload on the empty database.
func plotThroughput(rep scaleReport) []byte {
	sizes, labels := rep.steps()
	var ss []series
	colors := map[string]string{}
	yMax := 120.0
	for _, r := range rep.Results {
		if r.Workload == "cleanup of expired sessions" || r.Workload == "GET /ideas deep page" {
			continue
		}
		name := r.Workload + ", " + r.Backend
		i := slices.IndexFunc(ss, func(s series) bool { return s.name == name })
		if i < 0 {
			c, ok := colors[r.Workload]
			if !ok {
				c = palette[len(colors)%len(palette)]
				colors[r.Workload] = c
			}
			ss = append(ss, series{name: name, dashed: r.Backend == "postgres", color: c})
			i = len(ss) - 1
		}
		ss[i].points = append(ss[i].points, [2]float64{float64(slices.Index(sizes, r.Ideas)), 100 * r.Ratio})
		yMax = max(yMax, 100*r.Ratio)
	}
	return svgPlot("Throughput against the empty database, same run", "% of the empty database's requests/s",
		labels, ss, yMax, 80, "goal: lose at most 20%")
}

// plotDeepPage: p99 of the deep page against the big users' size.
func plotDeepPage(rep scaleReport) []byte {
	sizes, labels := rep.steps()
	var ss []series
	yMax := 60.0
	for _, r := range rep.Results {
		if r.Workload != "GET /ideas deep page" {
			continue
		}
		name := "deep page p99, " + r.Backend
		i := slices.IndexFunc(ss, func(s series) bool { return s.name == name })
		if i < 0 {
			c := palette[0]
			if r.Backend == "postgres" {
				c = palette[1]
			}
			ss = append(ss, series{name: name, dashed: r.Backend == "postgres", color: c})
			i = len(ss) - 1
		}
		ss[i].points = append(ss[i].points, [2]float64{float64(slices.Index(sizes, r.Ideas)), r.P99Ms})
		yMax = max(yMax, r.P99Ms)
	}
	for i, s := range sizes {
		labels[i] += fmt.Sprintf(" (%s each)", fmtCount(bigIdeasAt(rep, s)))
	}
	return svgPlot("Deep page: a big user's last page (its ideas / 10), 8 connections", "p99 (ms)", labels, ss, yMax, 50, "goal: 50 ms")
}

func bigIdeasAt(rep scaleReport, ideas int) int {
	for _, r := range rep.Results {
		if r.Ideas == ideas {
			return r.BigIdeas
		}
	}
	return 0
}

// table is the Markdown table of bench-scale, with a verdict per row at
// the full size.
func (rep scaleReport) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ideapool bench-scale, %s, %s, %d CPUs; each figure %s measured, interleaved with the same workload on the empty database\n\n",
		rep.Started.Format("2006-01-02"), rep.GoVersion, rep.NumCPU, rep.Duration)
	b.WriteString("| backend | workload | ideas | users | sessions | requests/s | empty db | ratio | p99 | empty p99 | errors | goal | met? |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n")
	for _, r := range rep.Results {
		goal, met := "—", "—"
		switch r.Workload {
		case "cleanup of expired sessions":
		case "GET /ideas deep page":
			goal = "p99 < 50 ms"
			met = yesNo(r.P99Ms < 50 && r.Errors == 0)
		default:
			goal = "≥ 80% of empty"
			met = yesNo(r.Ratio >= 0.8 && r.Errors == 0)
		}
		if r.Workload == "cleanup of expired sessions" {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | — | — | %s | — | %d | — | — |\n", r.Backend, r.Workload, fmtCount(r.Ideas), fmtCount(r.Users),
				fmtCount(r.Sessions), orText(r.Rate > 0, fmtRate(r.Rate)+" sessions/s", "not available"), orText(r.P99Ms > 0, fmtMs(r.P99Ms), "—"), r.Errors)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.0f%% | %s | %s | %d | %s | %s |\n", r.Backend, r.Workload, fmtCount(r.Ideas), fmtCount(r.Users),
			fmtCount(r.Sessions), fmtRate(r.Rate), fmtRate(r.EmptyRate), 100*r.Ratio, fmtMs(r.P99Ms), fmtMs(r.EmptyP99Ms), r.Errors+r.EmptyErrors, goal, met)
	}
	b.WriteString("\n")
	for _, r := range rep.Results {
		if r.Note != "" {
			fmt.Fprintf(&b, "- %s, %s, %s ideas: %s\n", r.Backend, r.Workload, fmtCount(r.Ideas), r.Note)
		}
	}
	for _, n := range rep.LoadNotes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func orText(ok bool, a, b string) string {
	if ok {
		return a
	}
	return b
}
