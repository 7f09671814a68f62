// Command peersreport turns a results folder of scripts/bench-peers.sh
// into the markdown of docs/PERFORMANCE.md's "Peers" section: one table of
// what each system did, one of the ratios against the goals, and the top of
// the broker's CPU profile.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/chronik-go/chronik/internal/bench"
)

const begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"

// run is one system at one size.
type run struct {
	ok       bool
	rate     float64 // msg/s
	p50, p99 float64 // µs, 0 when unknown
	messages int64
	failed   int64
}

func main() {
	dir := flag.String("dir", "", "results folder")
	sizes := flag.String("sizes", "256 1024", "message sizes of the run")
	doc := flag.String("doc", "", "rewrite the peers section of this markdown file instead of printing")
	flag.Parse()
	md := report(*dir, strings.Fields(*sizes))
	if *doc == "" {
		fmt.Print(md)
		return
	}
	if err := splice(*doc, md); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func chronik(path string) run {
	res, err := bench.ReadResult(path)
	if err != nil {
		return run{}
	}
	return run{ok: true, rate: res.MsgPerSec, p50: float64(res.Latency.P50), p99: float64(res.Latency.P99), messages: res.Messages, failed: res.Failed}
}

var (
	natsRate = regexp.MustCompile(`aggregated stats: ([\d,]+) msgs/sec`)
	natsLat  = regexp.MustCompile(`P50 ([\d,.]+)us \| P90 [\d,.]+us \| P99 ([\d,.]+)us`)
	// sarama: "100000 records sent, 52345.6 records/sec (12.78 MiB/sec ingress, ...), 3.2 ms avg latency, ..."
	saramaLine = regexp.MustCompile(`(\d+) records sent, ([\d.]+) records/sec .*?([\d.]+) ms avg latency`)
	saramaP99  = regexp.MustCompile(`([\d.]+) ms 99th`)
)

func num(s string) float64 {
	v, _ := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	return v
}

func nats(path string) run {
	b, err := os.ReadFile(path)
	if err != nil {
		return run{}
	}
	m := natsRate.FindSubmatch(b)
	if m == nil {
		return run{}
	}
	r := run{ok: true, rate: num(string(m[1]))}
	if l := natsLat.FindSubmatch(b); l != nil {
		r.p50, r.p99 = num(string(l[1])), num(string(l[2]))
	}
	return r
}

func sarama(path string) run {
	f, err := os.Open(path)
	if err != nil {
		return run{}
	}
	defer f.Close()
	var r run
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := saramaLine.FindStringSubmatch(sc.Text()); m != nil {
			r = run{ok: true, rate: num(m[2]), messages: int64(num(m[1]))}
			if p := saramaP99.FindStringSubmatch(sc.Text()); p != nil {
				r.p99 = num(p[1]) * 1000
			}
		}
	}
	return r
}

func lat(us float64) string {
	switch {
	case us <= 0:
		return "–"
	case us < 1000:
		return fmt.Sprintf("%.0f µs", us)
	default:
		return fmt.Sprintf("%.1f ms", us/1000)
	}
}

func rate(r run) string {
	if !r.ok {
		return "(no result)"
	}
	s := strconv.FormatInt(int64(r.rate), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ratio(a, b run) (float64, string) {
	if !a.ok || !b.ok || b.rate == 0 {
		return 0, "n/a"
	}
	v := a.rate / b.rate
	return v, fmt.Sprintf("%.2f×", v)
}

func report(dir string, sizes []string) string {
	var w strings.Builder
	machine, _ := os.ReadFile(filepath.Join(dir, "machine.txt"))
	fmt.Fprintf(&w, "%s\n\n", begin)
	fmt.Fprintf(&w, "Produced by `scripts/bench-peers.sh --write-doc` (results folder `%s`). All systems on one machine, one after\n", filepath.Base(dir))
	fmt.Fprintf(&w, "another, over 127.0.0.1; 128 producers (messages in flight), one partition or stream, no compression.\n\n```\n%s```\n\n", machine)
	type sys struct {
		name, durability, file string
		read                   func(string) run
	}
	systems := []sys{
		{"Chronik, acks=all", "WAL profile `high`: fdatasync before the acknowledgement", "chronik-acksall-%s.json", chronik},
		{"Chronik, acks=1", "the same (standalone: the leader's durable write is the quorum)", "chronik-acks1-%s.json", chronik},
		{"NATS JetStream R1, default sync", "file store, fsync every 2 min (lazy); async publish", "nats-lazy-%s.txt", nats},
		{"NATS JetStream R1, sync always", "file store, fsync on every write; async publish", "nats-always-%s.txt", nats},
		{"kfake (franz-go)", "memory only, nothing on disk", "kfake-%s.json", chronik},
		{"Chronik, acks=all, pipelined client", "as above; 2,048 messages in flight, 1 MiB batches, 20 requests in flight", "chronik-pipelined-%s.json", chronik},
		{"Chronik via sarama kafka-producer-performance", "as Chronik acks=all; acks=-1, 5 requests in flight", "sarama-%s.txt", sarama},
	}
	fmt.Fprintf(&w, "| system | durability |")
	for _, s := range sizes {
		fmt.Fprintf(&w, " %s B msg/s | p50 | p99 |", s)
	}
	fmt.Fprintf(&w, "\n|---|---|")
	for range sizes {
		fmt.Fprintf(&w, "---:|---:|---:|")
	}
	fmt.Fprintln(&w)
	results := map[string]map[string]run{}
	for _, s := range systems {
		results[s.name] = map[string]run{}
		fmt.Fprintf(&w, "| %s | %s |", s.name, s.durability)
		for _, size := range sizes {
			r := s.read(filepath.Join(dir, fmt.Sprintf(s.file, size)))
			results[s.name][size] = r
			fmt.Fprintf(&w, " %s | %s | %s |", rate(r), lat(r.p50), lat(r.p99))
		}
		fmt.Fprintln(&w)
	}
	fmt.Fprintf(&w, "\nLatency: Chronik and kfake rows are `chronik bench` (send → acknowledgement, every sample); NATS rows are\n")
	fmt.Fprintf(&w, "`nats bench` per-operation latency of its async batches; sarama reports only averages and the 99th percentile.\n\n")

	fmt.Fprintf(&w, "| ratio (same run) |")
	for _, s := range sizes {
		fmt.Fprintf(&w, " %s B |", s)
	}
	fmt.Fprintf(&w, " goal |\n|---|")
	for range sizes {
		fmt.Fprintf(&w, "---:|")
	}
	fmt.Fprintf(&w, "---|\n")
	all := results["Chronik, acks=all"]
	goals := []struct {
		name, against, goal string
		min                 float64
		cost                bool
	}{
		{"Chronik acks=all ÷ NATS JetStream (default sync)", "NATS JetStream R1, default sync", "≥ 2×", 2, false},
		{"Chronik acks=all ÷ kfake", "kfake (franz-go)", "≥ 3×", 3, false},
		{"Chronik acks=all ÷ NATS JetStream (sync always)", "NATS JetStream R1, sync always", "(same durability)", 0, false},
		{"acks=all cost against acks=1", "Chronik, acks=1", "≤ 15%", 0, true},
	}
	for _, g := range goals {
		fmt.Fprintf(&w, "| %s |", g.name)
		met := true
		for _, size := range sizes {
			v, s := ratio(all[size], results[g.against][size])
			if g.cost && s != "n/a" {
				cost := 1 - v
				s = fmt.Sprintf("%.1f%%", 100*cost)
				if cost < 0 {
					s = fmt.Sprintf("none (%.1f%% faster)", -100*cost)
				}
				met = met && cost <= 0.15
			} else if g.min > 0 {
				met = met && v >= g.min
			}
			fmt.Fprintf(&w, " %s |", s)
		}
		v := g.goal
		if g.min > 0 || g.cost {
			v += " " + verdict(met)
		}
		fmt.Fprintf(&w, " %s |\n", v)
	}
	// Consume catch-up against the acks=all produce rate.
	fmt.Fprintf(&w, "| consume catch-up ÷ produce (acks=all) |")
	met := true
	for _, size := range sizes {
		c := chronik(filepath.Join(dir, fmt.Sprintf("chronik-consume-%s.json", size)))
		v, s := ratio(c, all[size])
		met = met && v >= 1.5
		if cache, err := os.ReadFile(filepath.Join(dir, "consume-cache-"+size+".txt")); err == nil && strings.TrimSpace(string(cache)) != "dropped" {
			s += " (page cache warm)"
		}
		fmt.Fprintf(&w, " %s |", s)
	}
	fmt.Fprintf(&w, " ≥ 1.5× %s |\n", verdict(met))
	if res, err := bench.ReadResult(filepath.Join(dir, "chronik-low-half-256.json")); err == nil {
		sat := chronik(filepath.Join(dir, "chronik-low-saturated-256.json"))
		fmt.Fprintf(&w, "\nHalf load, WAL profile `low`, 256 B: saturated closed loop %s msg/s, then an open-loop round trip offered at\n", rate(sat))
		fmt.Fprintf(&w, "%.0f msg/s (latency from the intended send time): achieved %s msg/s, produce p99 **%s** (goal < 10 ms: %s),\n", res.RateLimit, rate(chronik(filepath.Join(dir, "chronik-low-half-256.json"))), lat(float64(res.Latency.P99)), verdict(res.Latency.P99 < 10000))
		if e := res.EndToEnd; e != nil {
			fmt.Fprintf(&w, "end-to-end p50 %s, p99 **%s** (goal < 20 ms: %s).\n", lat(float64(e.P50)), lat(float64(e.P99)), verdict(e.P99 < 20000))
		}
	}
	if m := scrape(filepath.Join(dir, "chronik-metrics-acksall-256.txt")); m != nil {
		reqs := m[`chronik_kafka_request_duration_seconds_count{api="Produce"}`]
		rounds := m["chronik_wal_batch_count_total"]
		if reqs > 0 && rounds > 0 {
			fmt.Fprintf(&w, "\nThe broker's own metrics for the acks=all 256 B run (warm-up included): %.0f produce requests of %.1f records on\n",
				reqs, m["chronik_messages_received_total"]/reqs)
			fmt.Fprintf(&w, "average, %.2f ms each inside the broker; %.0f commit rounds of %.2f writes on average, a round's fdatasync\n",
				1000*m[`chronik_kafka_request_duration_seconds_sum{api="Produce"}`]/reqs, rounds, m["chronik_wal_batch_writes_sum"]/m["chronik_wal_batch_writes_count"])
			fmt.Fprintf(&w, "phase %.2f ms and write phase %.3f ms on average.\n",
				1000*m["chronik_wal_fsync_duration_seconds_sum"]/m["chronik_wal_fsync_duration_seconds_count"],
				1000*m["chronik_wal_write_duration_seconds_sum"]/m["chronik_wal_write_duration_seconds_count"])
		}
	}
	if top, err := os.ReadFile(filepath.Join(dir, "chronik-cpu-top.txt")); err == nil {
		// The header (duration, samples) and the top 15 rows.
		var keep []string
		rows := -1
		for _, l := range strings.Split(string(top), "\n") {
			switch {
			case strings.HasPrefix(l, "Duration:"):
				keep = append(keep, l)
			case strings.Contains(l, "flat%"):
				keep = append(keep, l)
				rows = 0
			case rows >= 0 && rows < 15 && strings.TrimSpace(l) != "":
				keep = append(keep, l)
				rows++
			}
		}
		fmt.Fprintf(&w, "\nBroker CPU profile, 10 s in the middle of the acks=all 256 B run (`go tool pprof -top`):\n\n```\n%s\n```\n", strings.Join(keep, "\n"))
	}
	fmt.Fprintf(&w, "\n%s\n", end)
	return w.String()
}

// scrape reads a Prometheus text file into "name{labels}" → value (nil if
// the file is missing).
func scrape(path string) map[string]float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "**not met**"
}

// splice replaces the section between the markers, or appends it.
func splice(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + strings.TrimSuffix(section, "\n") + s[j+len(end):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n## Peers: Chronik against NATS JetStream and kfake\n\n" + section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
