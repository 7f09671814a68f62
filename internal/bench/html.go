package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// WriteHTML writes a self-contained page (inline SVG, no scripts, nothing
// fetched): the summary table, throughput over time and the latency
// percentile plot.
func (res *Result) WriteHTML(w io.Writer) error {
	var table strings.Builder
	res.WriteTable(&table)
	data := struct {
		R          *Result
		Table      string
		Throughput template.HTML
		Latency    template.HTML
	}{R: res, Table: table.String(), Throughput: throughputSVG(res), Latency: latencySVG(res)}
	return pageTmpl.Execute(w, data)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>chronik bench: {{.R.Mode}}{{with .R.Label}} — {{.}}{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:960px}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}
svg{background:#fff;border:1px solid #ddd;margin-bottom:1.5em}
svg text{font-size:11px;fill:#444}
.grid{stroke:#eee}.axis{stroke:#999}.l1{fill:none;stroke:#1f77b4;stroke-width:2}.l2{fill:none;stroke:#d62728;stroke-width:2}
</style></head><body>
<h1>chronik bench: {{.R.Mode}}{{with .R.Label}} — {{.}}{{end}}</h1>
<p>Started {{.R.Started.Format "2006-01-02 15:04:05 UTC"}} against <code>{{.R.Brokers}}</code>.</p>
<pre>{{.Table}}</pre>
<h2>Throughput over time</h2>
{{.Throughput}}
<h2>Latency by percentile</h2>
{{.Latency}}
<p>{{.R.Precision}}.</p>
</body></html>
`))

const (
	svgW, svgH             = 900, 320
	padL, padR, padT, padB = 70, 20, 20, 40
)

// scale maps v in [lo,hi] to [a,b].
func scale(v, lo, hi, a, b float64) float64 {
	if hi <= lo {
		return a
	}
	return a + (v-lo)/(hi-lo)*(b-a)
}

// niceMax rounds up to 1, 2 or 5 × a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func throughputSVG(res *Result) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="messages per second over time">`, svgW, svgH, svgW, svgH)
	if len(res.Timeline) == 0 {
		b.WriteString(`<text x="20" y="40">no samples</text></svg>`)
		return template.HTML(b.String()) //nolint:gosec // built from numbers only
	}
	maxT, maxY := 1.0, 0.0
	for _, t := range res.Timeline {
		maxT = math.Max(maxT, float64(t.Second))
		maxY = math.Max(maxY, float64(t.Messages))
	}
	maxY = niceMax(maxY)
	axes(&b, 0, maxT, 0, maxY, "seconds", "msg/s", func(v float64) string { return fmt.Sprintf("%.0f", v) }, func(v float64) string { return group3(int64(v)) })
	b.WriteString(`<polyline class="l1" points="`)
	for _, t := range res.Timeline {
		fmt.Fprintf(&b, "%.1f,%.1f ", scale(float64(t.Second), 0, maxT, padL, svgW-padR), scale(float64(t.Messages), 0, maxY, svgH-padB, padT))
	}
	b.WriteString(`"/>`)
	var errs bool
	for _, t := range res.Timeline {
		errs = errs || t.Errors > 0
	}
	if errs {
		b.WriteString(`<polyline class="l2" points="`)
		for _, t := range res.Timeline {
			fmt.Fprintf(&b, "%.1f,%.1f ", scale(float64(t.Second), 0, maxT, padL, svgW-padR), scale(float64(t.Errors), 0, maxY, svgH-padB, padT))
		}
		b.WriteString(`"/><text x="` + fmt.Sprint(svgW-padR-120) + `" y="15" style="fill:#d62728">errors per second</text>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers only
}

// nines maps a percentile to the usual HDR plot axis: log10(1/(1-p)),
// so 90 → 1, 99 → 2, 99.9 → 3; 100 is drawn at 6 nines.
func nines(p float64) float64 {
	if p >= 99.9999 {
		return 6
	}
	return math.Log10(100 / (100 - p))
}

func latencySVG(res *Result) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="latency by percentile">`, svgW, svgH, svgW, svgH)
	curves := [][]CurvePoint{res.Latency.Curve}
	if res.EndToEnd != nil {
		curves = append(curves, res.EndToEnd.Curve)
	}
	maxY := 0.0
	for _, c := range curves {
		for _, p := range c {
			maxY = math.Max(maxY, float64(p.Micros)/1000)
		}
	}
	if maxY == 0 {
		b.WriteString(`<text x="20" y="40">no samples</text></svg>`)
		return template.HTML(b.String()) //nolint:gosec // built from numbers only
	}
	maxY = niceMax(maxY)
	labels := map[float64]string{0: "0%", 1: "90%", 2: "99%", 3: "99.9%", 4: "99.99%", 5: "99.999%", 6: "max"}
	axes(&b, 0, 6, 0, maxY, "percentile", "ms", func(v float64) string { return labels[v] }, func(v float64) string { return fmt.Sprintf("%g", v) })
	for i, c := range curves {
		fmt.Fprintf(&b, `<polyline class="l%d" points="`, i+1)
		for _, p := range c {
			fmt.Fprintf(&b, "%.1f,%.1f ", scale(nines(p.Percentile), 0, 6, padL, svgW-padR), scale(float64(p.Micros)/1000, 0, maxY, svgH-padB, padT))
		}
		b.WriteString(`"/>`)
	}
	fmt.Fprintf(&b, `<text x="%d" y="15" style="fill:#1f77b4">%s</text>`, padL+10, template.HTMLEscapeString(res.LatencyKind))
	if res.EndToEnd != nil {
		fmt.Fprintf(&b, `<text x="%d" y="30" style="fill:#d62728">end to end: send → read back</text>`, padL+10)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped text only
}

// axes draws a grid with five ticks per axis.
func axes(b *strings.Builder, x0, x1, y0, y1 float64, xName, yName string, xl, yl func(float64) string) {
	for i := 0; i <= 5; i++ {
		y := y0 + (y1-y0)*float64(i)/5
		py := scale(y, y0, y1, svgH-padB, padT)
		fmt.Fprintf(b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`,
			padL, svgW-padR, py, py, padL-6, py+4, template.HTMLEscapeString(yl(y)))
	}
	steps := 5
	if x1-x0 == 6 {
		steps = 6
	}
	for i := 0; i <= steps; i++ {
		x := x0 + (x1-x0)*float64(i)/float64(steps)
		px := scale(x, x0, x1, padL, svgW-padR)
		fmt.Fprintf(b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`,
			px, px, padT, svgH-padB, px, svgH-padB+16, template.HTMLEscapeString(xl(x)))
	}
	fmt.Fprintf(b, `<line class="axis" x1="%d" x2="%d" y1="%d" y2="%d"/><line class="axis" x1="%d" x2="%d" y1="%d" y2="%d"/>`,
		padL, svgW-padR, svgH-padB, svgH-padB, padL, padL, padT, svgH-padB)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text><text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">%s</text>`,
		(padL+svgW-padR)/2, svgH-6, xName, (padT+svgH-padB)/2, (padT+svgH-padB)/2, yName)
}
