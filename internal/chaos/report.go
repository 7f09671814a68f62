package chaos

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Window is a fault's span in a run: from the nemesis invocation of the
// fault to the completion of the heal that follows it.
type Window struct {
	Fault    string
	What     string
	From, To int64 // ns since the start of the run
}

// Windows derives the fault windows of a history. A fault not followed by
// a heal lasts until the next fault, or the end of the history.
func Windows(events []Event) []Window {
	var out []Window
	var open *Window
	var end int64
	for _, e := range events {
		end = max(end, e.Time)
		if e.F != Nemesis {
			continue
		}
		switch {
		case e.Fault == Heal && e.Type != Invoke:
			if open != nil {
				open.To = e.Time
				out = append(out, *open)
				open = nil
			}
		case e.Fault != Heal && e.Type == Invoke:
			if open != nil {
				open.To = e.Time
				out = append(out, *open)
			}
			open = &Window{Fault: e.Fault, What: e.Value, From: e.Time}
		}
	}
	if open != nil {
		open.To = end
		out = append(out, *open)
	}
	return out
}

// series is one bucketed measure over the run.
type bucket struct {
	ok, notOK int
	lat       []float64 // ms of acknowledged produces
}

// WriteReport writes an offline HTML page for one run: acknowledged
// produces per second and produce latency over time with the fault
// windows shaded, the summary table, the anomalies and the run's log. It
// reads only the history, the verdict and the log, so a kept history gives
// the same page later (chaos -check -html).
func WriteReport(w io.Writer, title string, events []Event, res *Result, log []string) error {
	var end int64
	for _, e := range events {
		end = max(end, e.Time)
	}
	width := time.Duration(max(end/200, int64(250*time.Millisecond)))
	n := int(end/int64(width)) + 1
	bs := make([]bucket, n)
	for _, o := range pair(events) {
		if o.inv.F != Produce || o.done == nil || o.done == o.inv {
			continue
		}
		b := &bs[o.done.Time/int64(width)]
		if o.done.Type == OK {
			b.ok++
			b.lat = append(b.lat, float64(o.done.Time-o.inv.Time)/1e6)
		} else {
			b.notOK++
		}
	}
	ws := Windows(events)
	data := struct {
		Title     string
		Summary   Summary
		Kinds     []Kind
		Valid     bool
		Anomalies []Anomaly
		More      int
		Windows   []Window
		Log       []string
		Through   template.HTML
		Latency   template.HTML
		Bucket    time.Duration
	}{Title: title, Summary: res.Summary, Kinds: Kinds, Valid: res.Valid(), Windows: ws, Log: log, Bucket: width}
	const maxShown = 50
	data.Anomalies = res.Anomalies
	if len(data.Anomalies) > maxShown {
		data.More = len(data.Anomalies) - maxShown
		data.Anomalies = data.Anomalies[:maxShown]
	}
	secs := width.Seconds()
	var thr, bad, p50, pmax []float64
	for _, b := range bs {
		thr = append(thr, float64(b.ok)/secs)
		bad = append(bad, float64(b.notOK)/secs)
		if len(b.lat) == 0 {
			p50, pmax = append(p50, math.NaN()), append(pmax, math.NaN())
			continue
		}
		slices.Sort(b.lat)
		p50 = append(p50, b.lat[len(b.lat)/2])
		pmax = append(pmax, b.lat[len(b.lat)-1])
	}
	ch := chart{width: 960, height: 220, end: end, bucket: int64(width), windows: ws}
	for i, a := range res.Anomalies {
		if i == 200 || len(a.Events) == 0 {
			break
		}
		ch.marks = append(ch.marks, mark{a.Events[len(a.Events)-1].Time, string(a.Kind) + ": " + a.Detail})
	}
	data.Through = template.HTML(ch.svg("acknowledged produces per second", false, []line{{"ok / s", "#1f6fb2", thr}, {"unknown or failed / s", "#c0392b", bad}}))
	data.Latency = template.HTML(ch.svg("produce latency, ms (log scale)", true, []line{{"median", "#1f6fb2", p50}, {"max", "#8e44ad", pmax}}))
	if err := reportPage.Execute(w, data); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

type line struct {
	name, color string
	ys          []float64
}

type chart struct {
	width, height int
	end, bucket   int64
	windows       []Window
	marks         []mark // anomalies, drawn as red lines
}

type mark struct {
	at   int64
	what string
}

var faultColors = map[string]string{"f1": "#f5b7b1", "f2": "#fad7a0", "f3": "#f9e79f", "f4": "#aed6f1", "f5": "#d2b4de", "f6": "#a9dfbf", "f10": "#d5dbdb", "w4": "#f1948a"}

func faultColor(f string) string {
	k, _, _ := strings.Cut(f, "-")
	if c, ok := faultColors[k]; ok {
		return c
	}
	return "#e5e7e9"
}

// svg draws lines over time with the fault windows shaded behind them.
func (c chart) svg(title string, logY bool, lines []line) string {
	const left, right, top, bottom = 60, 10, 24, 30
	pw, ph := float64(c.width-left-right), float64(c.height-top-bottom)
	x := func(t int64) float64 { return left + pw*float64(t)/float64(max(c.end, 1)) }
	ymax := 1.0
	for _, l := range lines {
		for _, v := range l.ys {
			if !math.IsNaN(v) {
				ymax = max(ymax, v)
			}
		}
	}
	ymin := 0.0
	tr := func(v float64) float64 { return v }
	if logY {
		tr = func(v float64) float64 { return math.Log10(max(v, 0.1)) }
		ymin, ymax = -1, math.Ceil(math.Log10(ymax))
	} else {
		ymax *= 1.1
	}
	y := func(v float64) float64 { return top + ph - ph*(tr(v)-ymin)/(ymax-ymin) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`, c.width, c.height)
	fmt.Fprintf(&b, `<text x="%d" y="14" font-weight="bold">%s</text>`, left, html.EscapeString(title))
	for _, w := range c.windows {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.0f" fill="%s" opacity="0.6"><title>%s: %s</title></rect>`,
			x(w.From), top, max(x(w.To)-x(w.From), 1), ph, faultColor(w.Fault), html.EscapeString(w.Fault), html.EscapeString(w.What))
		if x(w.To)-x(w.From) > 5.5*float64(len(w.Fault)) { // a label only where it fits
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="9" fill="#555">%s</text>`, x(w.From)+2, top+10, html.EscapeString(w.Fault))
		}
	}
	for _, m := range c.marks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" stroke="#c0392b" stroke-width="1.5"><title>%s</title></line>`,
			x(m.at), top, x(m.at), top+ph, html.EscapeString(m.what))
	}
	// Axes and ticks.
	fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, left, top+ph, left+pw, top+ph)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%.0f" stroke="#333"/>`, left, top, left, top+ph)
	step := niceStep(float64(c.end) / 1e9 / 10)
	for s := 0.0; s <= float64(c.end)/1e9; s += step {
		xx := x(int64(s * 1e9))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#333"/><text x="%.1f" y="%.0f" text-anchor="middle">%gs</text>`, xx, top+ph, xx, top+ph+4, xx, top+ph+16, s)
	}
	if logY {
		for e := int(ymin); e <= int(ymax); e++ {
			v := math.Pow(10, float64(e))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g</text><line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`, left-4, y(v)+4, v, left, y(v), left+pw, y(v))
		}
	} else {
		ys := niceStep(ymax / 5)
		for v := 0.0; v <= ymax; v += ys {
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g</text><line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`, left-4, y(v)+4, v, left, y(v), left+pw, y(v))
		}
	}
	for i, l := range lines {
		var pts []string
		flush := func() {
			if len(pts) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, l.color, strings.Join(pts, " "))
				pts = nil
			}
		}
		for k, v := range l.ys {
			if math.IsNaN(v) {
				flush()
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(int64(k)*c.bucket+c.bucket/2), y(v)))
		}
		flush()
		fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="10" height="3" fill="%s"/><text x="%.0f" y="%d">%s</text>`, left+pw-260+float64(i)*130, 10, l.color, left+pw-246+float64(i)*130, 14, html.EscapeString(l.name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"secs": func(ns int64) string { return fmt.Sprintf("%.1f s", float64(ns)/1e9) },
	"lines": func(evs []Event) []string {
		out := make([]string, len(evs))
		for i, e := range evs {
			out[i] = e.line()
		}
		return out
	},
	"count": func(m map[Kind]int, k Kind) int { return m[k] },
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:sans-serif;margin:1.5em;max-width:1000px}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
td.n{text-align:right}.bad{background:#f5b7b1}.good{background:#d5f5e3}
pre{background:#f6f6f6;padding:0.5em;overflow-x:auto;font-size:12px}
</style></head><body>
<h1>{{.Title}}</h1>
<p class="{{if .Valid}}good{{else}}bad{{end}}">{{if .Valid}}Valid: no anomalies.{{else}}Anomalies found.{{end}}</p>
<div>{{.Through}}</div>
<div>{{.Latency}}</div>
<p>Buckets of {{.Bucket}}; shaded: fault windows (from the fault's start to the end of its heal); red lines:
anomalies (at their last event). Hover for details.</p>
<h2>Summary</h2>
<table>
<tr><th>operations</th><td class="n">{{.Summary.Operations}}</td></tr>
<tr><th>produces</th><td class="n">{{.Summary.Produces}}</td></tr>
<tr><th>acknowledged</th><td class="n">{{.Summary.Acknowledged}}</td></tr>
<tr><th>failed</th><td class="n">{{.Summary.Failed}}</td></tr>
<tr><th>unknown (of them read)</th><td class="n">{{.Summary.Unknown}} ({{.Summary.UnknownSeen}})</td></tr>
<tr><th>offsets read</th><td class="n">{{.Summary.Read}}</td></tr>
<tr><th>end-offset answers</th><td class="n">{{.Summary.EndOffsets}}</td></tr>
<tr><th>faults injected</th><td class="n">{{.Summary.Faults}}</td></tr>
<tr><th>committed entries compared across replicas</th><td class="n">{{.Summary.ReplicaEntries}}</td></tr>
<tr><th>replica logs that could not be compared</th><td class="n">{{.Summary.ReplicaLogsUnchecked}}</td></tr>
</table>
<table><tr><th>anomaly</th><th>count</th></tr>
{{range .Kinds}}{{$n := count $.Summary.Anomalies .}}<tr{{if $n}} class="bad"{{end}}><td>{{.}}</td><td class="n">{{$n}}</td></tr>
{{end}}</table>
<h2>Faults</h2>
<table><tr><th>from</th><th>to</th><th>fault</th><th>what</th></tr>
{{range .Windows}}<tr><td class="n">{{secs .From}}</td><td class="n">{{secs .To}}</td><td>{{.Fault}}</td><td>{{.What}}</td></tr>
{{end}}</table>
{{if .Anomalies}}<h2>Anomalies</h2>
{{range .Anomalies}}<h3>{{.Kind}} {{.Topic}}-{{.Partition}}</h3><p>{{.Detail}}</p><pre>{{range lines .Events}}{{.}}
{{end}}</pre>
{{end}}{{if .More}}<p>({{.More}} more; the JSON report lists all)</p>{{end}}{{end}}
{{if .Log}}<h2>Run log</h2><pre>{{range .Log}}{{.}}
{{end}}</pre>{{end}}
</body></html>
`))
