package bench

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one run, as written by --json-output and read by compare.
type Result struct {
	Tool        string    `json:"tool"`
	Label       string    `json:"label,omitempty"`
	Mode        string    `json:"mode"`
	LoadModel   string    `json:"load_model"` // closed or open
	Started     time.Time `json:"started"`
	DurationSec float64   `json:"duration_secs"`

	Brokers       string  `json:"brokers"`
	Topic         string  `json:"topic"`
	Concurrency   int     `json:"concurrency"`
	MessageSize   int     `json:"message_size"`
	Acks          string  `json:"acks"`
	Idempotent    bool    `json:"idempotent"`
	Compression   string  `json:"compression"`
	LingerMs      int     `json:"linger_ms"`
	BatchSize     int     `json:"batch_size"`
	RateLimit     float64 `json:"rate_limit,omitempty"`
	ConsumerGroup string  `json:"consumer_group,omitempty"`

	Messages       int64   `json:"messages"`
	Failed         int64   `json:"failed"`
	Bytes          int64   `json:"bytes"`
	MsgPerSec      float64 `json:"msg_per_sec"`
	MBPerSec       float64 `json:"mb_per_sec"`
	SuccessRatePct float64 `json:"success_rate_pct"`

	LatencyKind string           `json:"latency_kind"`
	Latency     Latency          `json:"latency"`
	EndToEnd    *Latency         `json:"end_to_end,omitempty"`
	Precision   string           `json:"precision"`
	Timeline    []Tick           `json:"timeline"`
	Errors      map[string]int64 `json:"errors"`
}

// Tick is one second of the measured run.
type Tick struct {
	Second   int   `json:"t"`
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
	Errors   int64 `json:"errors"`
}

func (r *runner) result(start time.Time, elapsed time.Duration) *Result {
	cfg := r.cfg
	h, clamped := r.lat.Snapshot()
	res := &Result{
		Tool: "chronik bench", Label: cfg.Label, Mode: cfg.Mode, LoadModel: "closed", Started: start.UTC(),
		DurationSec: elapsed.Seconds(), Brokers: strings.Join(cfg.Brokers, ","), Topic: cfg.Topic, Concurrency: cfg.Concurrency,
		MessageSize: cfg.MessageSize, Acks: cfg.Acks, Idempotent: cfg.Idempotent, Compression: cfg.Compression,
		LingerMs: cfg.LingerMs, BatchSize: cfg.BatchSize, RateLimit: cfg.RateLimit, ConsumerGroup: cfg.ConsumerGroup,
		Messages: r.c.msgs.Load(), Failed: r.c.failed.Load(), Bytes: r.c.bytes.Load(),
		Latency: Summarise(h, clamped), Precision: Precision, Timeline: r.timeline, Errors: map[string]int64{},
	}
	if cfg.OpenLoop {
		res.LoadModel = "open"
	}
	if cfg.Mode == ModeConsume || cfg.Mode == ModeMetadata {
		res.Acks, res.Compression, res.LingerMs, res.BatchSize, res.MessageSize = "", "", 0, 0, 0
		if res.Messages > 0 && cfg.Mode == ModeConsume {
			res.MessageSize = int(res.Bytes / res.Messages) // the average read
		}
	}
	if s := elapsed.Seconds(); s > 0 {
		res.MsgPerSec = float64(res.Messages) / s
		res.MBPerSec = float64(res.Bytes) / s / 1e6
	}
	if total := res.Messages + res.Failed; total > 0 {
		res.SuccessRatePct = 100 * float64(res.Messages) / float64(total)
	}
	r.c.errMu.Lock()
	maps.Copy(res.Errors, r.c.errs)
	r.c.errMu.Unlock()
	return res
}

// WriteTable prints the final table people read.
func (res *Result) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	model := res.LoadModel + " loop"
	if res.LoadModel == "closed" {
		model += fmt.Sprintf(", %d in flight", res.Concurrency)
	}
	if res.RateLimit > 0 {
		model += fmt.Sprintf(", %s msg/s offered", group3(int64(res.RateLimit)))
	}
	fmt.Fprintf(tw, "mode\t%s (%s)\n", res.Mode, model)
	if res.Mode != ModeMetadata {
		size := "%d-byte messages"
		if res.Mode == ModeConsume {
			size = "%d bytes per message on average"
		}
		fmt.Fprintf(tw, "topic\t%s, "+size, res.Topic, res.MessageSize)
		if res.Acks != "" {
			fmt.Fprintf(tw, ", acks=%s, compression %s, linger %d ms, batch %d B", res.Acks, res.Compression, res.LingerMs, res.BatchSize)
			if res.Idempotent {
				fmt.Fprint(tw, ", idempotent")
			}
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "duration\t%.2f s\n", res.DurationSec)
	unit := "messages"
	if res.Mode == ModeMetadata {
		unit = "requests"
	}
	fmt.Fprintf(tw, "%s\t%s (%.2f%% succeeded, %s failed)\n", unit, group3(res.Messages), res.SuccessRatePct, group3(res.Failed))
	fmt.Fprintf(tw, "throughput\t%s msg/s, %.2f MB/s (%s bytes)\n", group3(int64(res.MsgPerSec)), res.MBPerSec, group3(res.Bytes))
	latencyRows(tw, res.LatencyKind, res.Latency)
	if res.EndToEnd != nil {
		latencyRows(tw, "end to end: send → read back", *res.EndToEnd)
	}
	fmt.Fprintf(tw, "precision\t%s\n", res.Precision)
	for _, k := range slices.Sorted(maps.Keys(res.Errors)) {
		fmt.Fprintf(tw, "error\t%s × %s\n", group3(res.Errors[k]), k)
	}
	_ = tw.Flush()
}

func latencyRows(tw io.Writer, kind string, l Latency) {
	fmt.Fprintf(tw, "latency\t%s\n", kind)
	if l.Count == 0 {
		fmt.Fprintf(tw, "\tno samples\n")
		return
	}
	fmt.Fprintf(tw, "\tp50 %s  p90 %s  p95 %s  p99 %s  p99.9 %s  max %s  (%s samples)\n",
		fmtMicros(l.P50), fmtMicros(l.P90), fmtMicros(l.P95), fmtMicros(l.P99), fmtMicros(l.P999), fmtMicros(l.Max), group3(l.Count))
	if l.Clamped > 0 {
		fmt.Fprintf(tw, "\t%d samples above 1 h were recorded as 1 h\n", l.Clamped)
	}
}

// csvHeader is the original's CSV columns, then ours.
var csvHeader = []string{"timestamp", "mode", "duration_secs", "total_messages", "failed_messages", "total_bytes",
	"throughput_msg_per_sec", "throughput_mb_per_sec", "success_rate_pct",
	"latency_p50_us", "latency_p90_us", "latency_p95_us", "latency_p99_us", "latency_p999_us", "latency_max_us",
	"latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_p999_ms", "latency_max_ms",
	"message_size", "concurrency", "compression",
	"acks", "load_model", "rate_limit", "e2e_p50_us", "e2e_p99_us", "e2e_p999_us", "e2e_max_us"}

// WriteCSV writes one header and one data row.
func (res *Result) WriteCSV(w io.Writer) error {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	ms := func(v int64) string { return f(float64(v) / 1000) }
	l := res.Latency
	row := []string{res.Started.Format(time.RFC3339), res.Mode, f(res.DurationSec), i(res.Messages), i(res.Failed), i(res.Bytes),
		f(res.MsgPerSec), f(res.MBPerSec), f(res.SuccessRatePct),
		i(l.P50), i(l.P90), i(l.P95), i(l.P99), i(l.P999), i(l.Max),
		ms(l.P50), ms(l.P90), ms(l.P95), ms(l.P99), ms(l.P999), ms(l.Max),
		strconv.Itoa(res.MessageSize), strconv.Itoa(res.Concurrency), res.Compression,
		res.Acks, res.LoadModel, f(res.RateLimit)}
	if e := res.EndToEnd; e != nil {
		row = append(row, i(e.P50), i(e.P99), i(e.P999), i(e.Max))
	} else {
		row = append(row, "", "", "", "")
	}
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	_ = cw.Write(row)
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the result as indented JSON.
func (res *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// ReadResult loads a result written by WriteJSON.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: not a chronik bench result: %w", path, err)
	}
	if res.Tool != "chronik bench" {
		return nil, fmt.Errorf("%s: not a chronik bench result (tool %q)", path, res.Tool)
	}
	return &res, nil
}

// Compare prints B against A: each metric and B/A.
func Compare(w io.Writer, a, b *Result, aName, bName string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "metric\t%s\t%s\tB/A\t\n", aName, bName)
	row := func(name string, x, y float64, format func(float64) string) {
		ratio := "n/a"
		if x != 0 {
			ratio = strconv.FormatFloat(y/x, 'f', 2, 64) + "×"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, format(x), format(y), ratio)
	}
	num := func(v float64) string { return group3(int64(v)) }
	mb := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	lat := func(v float64) string { return fmtMicros(int64(v)) }
	row("msg/s", a.MsgPerSec, b.MsgPerSec, num)
	row("MB/s", a.MBPerSec, b.MBPerSec, mb)
	row("messages", float64(a.Messages), float64(b.Messages), num)
	row("failed", float64(a.Failed), float64(b.Failed), num)
	for _, p := range []struct {
		name string
		get  func(Latency) int64
	}{{"p50", func(l Latency) int64 { return l.P50 }}, {"p90", func(l Latency) int64 { return l.P90 }},
		{"p99", func(l Latency) int64 { return l.P99 }}, {"p99.9", func(l Latency) int64 { return l.P999 }},
		{"max", func(l Latency) int64 { return l.Max }}} {
		row("latency "+p.name, float64(p.get(a.Latency)), float64(p.get(b.Latency)), lat)
	}
	if a.EndToEnd != nil && b.EndToEnd != nil {
		row("end-to-end p50", float64(a.EndToEnd.P50), float64(b.EndToEnd.P50), lat)
		row("end-to-end p99", float64(a.EndToEnd.P99), float64(b.EndToEnd.P99), lat)
	}
	_ = tw.Flush()
	if a.Mode != b.Mode || a.MessageSize != b.MessageSize || a.LoadModel != b.LoadModel || a.Concurrency != b.Concurrency || a.Acks != b.Acks {
		fmt.Fprintf(w, "note: the runs differ in setup: A %s/%s %d B, %d in flight, acks=%s; B %s/%s %d B, %d in flight, acks=%s\n",
			a.Mode, a.LoadModel, a.MessageSize, a.Concurrency, a.Acks, b.Mode, b.LoadModel, b.MessageSize, b.Concurrency, b.Acks)
	}
}
