package server

import (
	"context"
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
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/dashcheck"
)

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

	// Every panel but those only a cluster fills (tests/cluster checks
	// them against a cluster node).
	all, err := dashcheck.Load(filepath.Join("..", "..", "deploy", "grafana", "chronik.json"))
	if err != nil {
		t.Fatal(err)
	}
	var panels []dashcheck.Panel
	for _, p := range all {
		if !dashcheck.ClusterRow(p.Row) {
			panels = append(panels, p)
		}
	}
	if len(panels) < 10 {
		t.Fatalf("only %d panels with queries", len(panels))
	}
	exposed, err := dashcheck.Exposed(s.MetricsAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	problems, checked := dashcheck.Check(panels, exposed)
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d panels, %d metric references checked against /metrics", len(panels), checked)
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
