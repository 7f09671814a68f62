package server

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/twmb/franz-go/pkg/kgo"
)

// dashboardExprs returns every PromQL expression of the Grafana dashboard
// (panel targets and template variable queries), by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "chronik.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		// label_values(metric, label) is Grafana's, not PromQL: check the
		// metric as a selector.
		if q, ok := strings.CutPrefix(v.Query, "label_values("); ok {
			metric, _, _ := strings.Cut(q, ",")
			out["variable "+v.Name] = append(out["variable "+v.Name], strings.TrimSpace(metric))
		}
	}
	return out
}

// grafanaVars replaces Grafana's macros by values PromQL accepts.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$__interval", "30s", "$instance", ".*")

// TestDashboardQueriesNameRealMetrics parses every expression of the
// dashboard with Prometheus's own PromQL parser and checks each metric it
// names (and each label it filters on) against a live broker's /metrics
// after traffic.
func TestDashboardQueriesNameRealMetrics(t *testing.T) {
	s := metricsConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Traffic: produce, consume in a group that commits, so every family
	// with labels has samples.
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.DefaultProduceTopic("d"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	grp, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.ConsumerGroup("dg"), kgo.ConsumeTopics("d"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	for seen := 0; seen < 20; {
		seen += grp.PollFetches(ctx).NumRecords()
		if ctx.Err() != nil {
			t.Fatal("group consumer read nothing")
		}
	}
	if err := grp.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	defer grp.Close()

	// What the broker exposes: sample names and each family's labels.
	families := gather(t, s.MetricsAddr().String())
	exposed := map[string]map[string]bool{} // sample name → label names
	for name, f := range families {
		names := []string{name}
		if f.GetType().String() == "HISTOGRAM" {
			names = []string{name + "_bucket", name + "_sum", name + "_count"}
		}
		for _, n := range names {
			ls := map[string]bool{}
			for _, m := range f.Metric {
				for _, l := range m.Label {
					ls[l.GetName()] = true
				}
			}
			if strings.HasSuffix(n, "_bucket") {
				ls["le"] = true
			}
			exposed[n] = ls
		}
	}

	exprs := dashboardExprs(t)
	if len(exprs) < 10 {
		t.Fatalf("only %d panels with queries", len(exprs))
	}
	checked := 0
	for title, list := range exprs {
		for _, e := range list {
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(e))
			if err != nil {
				t.Errorf("panel %q: %q does not parse: %v", title, e, err)
				continue
			}
			parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
				vs, ok := node.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				name := vs.Name
				for _, m := range vs.LabelMatchers {
					if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
						name = m.Value
					}
				}
				ls, ok := exposed[name]
				if !ok {
					t.Errorf("panel %q queries %s, which the broker does not export", title, name)
					return nil
				}
				checked++
				for _, m := range vs.LabelMatchers {
					// instance and job are added by Prometheus when it scrapes.
					if m.Name == model.MetricNameLabel || m.Name == "instance" || m.Name == "job" {
						continue
					}
					if !ls[m.Name] {
						t.Errorf("panel %q filters %s on label %q, which it does not have (labels: %v)", title, name, m.Name, keys(ls))
					}
				}
				return nil
			})
		}
	}
	t.Logf("%d panels, %d metric references checked against /metrics", len(exprs), checked)
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// gather reads /metrics into metric families.
func gather(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

var updateDoc = flag.Bool("update", false, "rewrite the metrics table of docs/OBSERVABILITY.md")

// TestObservabilityDoc keeps docs/OBSERVABILITY.md's table equal to what a
// broker exports (every chronik_* family, its type, labels and help).
func TestObservabilityDoc(t *testing.T) {
	s := metricsConfig(t)
	// One request, so that the labelled histogram has a sample (and so a
	// type in the exposition).
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	families := gather(t, s.MetricsAddr().String())
	// Labelled families without samples yet are described from the
	// registry, so the table does not depend on traffic.
	descs := map[string]string{}
	ch := make(chan *prometheus.Desc, 256)
	go func() { s.metrics.Registry.Describe(ch); close(ch) }()
	for d := range ch {
		str := d.String()
		name := between(str, `fqName: "`, `"`)
		descs[name] = str
	}
	var rows []string
	var names []string
	for name := range descs {
		if strings.HasPrefix(name, "chronik_") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		d := descs[name]
		typ := "gauge"
		if f, ok := families[name]; ok {
			typ = strings.ToLower(f.GetType().String())
		} else if strings.HasSuffix(name, "_total") {
			typ = "counter"
		}
		lbls := between(d, "variableLabels: {", "}")
		help := between(d, `help: "`, `", `)
		if lbls != "" {
			lbls = "`" + strings.ReplaceAll(lbls, ",", "`, `") + "`"
		}
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s | %s |", name, typ, lbls, strings.ReplaceAll(help, "|", "\\|")))
	}
	table := "<!-- metrics:begin -->\n| metric | type | labels | meaning |\n|---|---|---|---|\n" + strings.Join(rows, "\n") + "\n<!-- metrics:end -->"
	path := filepath.Join("..", "..", "docs", "OBSERVABILITY.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, "<!-- metrics:begin -->"), strings.Index(doc, "<!-- metrics:end -->")
	if i < 0 || j < i {
		t.Fatal("docs/OBSERVABILITY.md lacks the metrics markers")
	}
	want := doc[:i] + table + doc[j+len("<!-- metrics:end -->"):]
	if *updateDoc {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != doc {
		t.Fatalf("docs/OBSERVABILITY.md's metric table differs from what the broker exports; run go test ./internal/server -run TestObservabilityDoc -update")
	}
}

func between(s, a, b string) string {
	_, rest, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, b)
	return v
}
