// Package dashcheck checks the Grafana dashboard against a live broker: it
// parses every query with Prometheus's own PromQL parser and checks each
// metric it names, and each label it filters on, against the broker's
// /metrics. Standalone brokers check the dashboard's general rows; a
// cluster node checks the rows that only a cluster fills (their titles end
// in "(cluster)").
package dashcheck

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Panel is one panel's queries and the row it sits in ("" before any row;
// template variables have the row "variables").
type Panel struct {
	Title string
	Row   string
	Exprs []string
}

// Load reads the dashboard JSON at path.
func Load(path string) ([]Panel, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	var out []Panel
	row := ""
	for _, p := range d.Panels {
		if p.Type == "row" {
			row = p.Title
			continue
		}
		pn := Panel{Title: p.Title, Row: row}
		for _, tg := range p.Targets {
			pn.Exprs = append(pn.Exprs, tg.Expr)
		}
		out = append(out, pn)
	}
	for _, v := range d.Templating.List {
		// label_values(metric, label) is Grafana's, not PromQL: check the
		// metric as a selector.
		if q, ok := strings.CutPrefix(v.Query, "label_values("); ok {
			metric, _, _ := strings.Cut(q, ",")
			out = append(out, Panel{Title: "variable " + v.Name, Row: "variables", Exprs: []string{strings.TrimSpace(metric)}})
		}
	}
	return out, nil
}

// ClusterRow reports whether a row is filled only by a cluster.
func ClusterRow(row string) bool { return strings.HasSuffix(row, "(cluster)") }

// grafanaVars replaces Grafana's macros by values PromQL accepts.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$__interval", "30s", "$instance", ".*")

// Exposed reads a broker's /metrics: each sample name with the label names
// its family has.
func Exposed(metricsAddr string) (map[string]map[string]bool, error) {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	families, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	exposed := map[string]map[string]bool{}
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
	return exposed, nil
}

// Check checks the panels' queries against what a broker exposes and
// returns the problems found and how many metric references it checked.
func Check(panels []Panel, exposed map[string]map[string]bool) (problems []string, checked int) {
	for _, p := range panels {
		if len(p.Exprs) == 0 {
			problems = append(problems, fmt.Sprintf("panel %q has no query", p.Title))
		}
		for _, e := range p.Exprs {
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(e))
			if err != nil {
				problems = append(problems, fmt.Sprintf("panel %q: %q does not parse: %v", p.Title, e, err))
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
					problems = append(problems, fmt.Sprintf("panel %q queries %s, which the broker does not export", p.Title, name))
					return nil
				}
				checked++
				for _, m := range vs.LabelMatchers {
					// instance and job are added by Prometheus when it scrapes.
					if m.Name == model.MetricNameLabel || m.Name == "instance" || m.Name == "job" {
						continue
					}
					if !ls[m.Name] {
						problems = append(problems, fmt.Sprintf("panel %q filters %s on label %q, which it does not have (labels: %v)", p.Title, name, m.Name, keys(ls)))
					}
				}
				return nil
			})
		}
	}
	return problems, checked
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
