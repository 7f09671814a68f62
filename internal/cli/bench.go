package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronik-go/chronik/internal/bench"
)

// secondsOrDuration parses "30s", "1m", "500ms", "2h" or a bare number of
// seconds, as the original's --duration did.
type secondsOrDuration struct{ d *time.Duration }

func (v secondsOrDuration) String() string { return v.d.String() }
func (v secondsOrDuration) Type() string   { return "duration" }
func (v secondsOrDuration) Set(s string) error {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		*v.d = time.Duration(n * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 30s, 5m, 500ms, or seconds)", s)
	}
	*v.d = d
	return nil
}

// NewBenchCommand is `chronik bench`.
func NewBenchCommand() *cobra.Command {
	cfg := bench.Defaults()
	var (
		brokers                   string
		csvOut, jsonOut, htmlOut  string
		reportSecs                int
		requestTimeoutMs, msgTOMs int
		quiet                     bool
	)
	if v := os.Getenv("KAFKA_BOOTSTRAP_SERVERS"); v != "" {
		brokers = v
	} else {
		brokers = strings.Join(cfg.Brokers, ",")
	}
	if v := os.Getenv("KAFKA_TOPIC"); v != "" {
		cfg.Topic = v
	}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test any Kafka-compatible cluster: produce, consume, round-trip, metadata",
		Long: `Load-test any Kafka-compatible cluster.

Closed loop (default): -c messages in flight, each worker sends the next when
the last is acknowledged. Open loop (--open-loop --rate-limit R): messages
are sent at exactly R per second whatever happens, and latency counts from
each message's intended send time, so a stall is not hidden (no
coordinated omission). --rate-limit is one global rate, not per worker.

Every latency sample is recorded (HDR histograms, 3 significant digits).
Ctrl-C ends the run early and still reports what was measured.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Brokers = strings.Split(brokers, ",")
			cfg.ReportInterval = time.Duration(reportSecs) * time.Second
			cfg.RequestTimeout = time.Duration(requestTimeoutMs) * time.Millisecond
			cfg.MessageTimeout = time.Duration(msgTOMs) * time.Millisecond
			if !quiet {
				cfg.Progress = cmd.ErrOrStderr()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "chronik bench: %s against %s, topic %s", cfg.Mode, brokers, cfg.Topic)
				if cfg.Warmup > 0 {
					fmt.Fprintf(cfg.Progress, " (warm-up %s first)", cfg.Warmup)
				}
				fmt.Fprintln(cfg.Progress)
			}
			res, err := bench.Run(ctx, cfg)
			if err != nil {
				return err
			}
			res.WriteTable(cmd.OutOrStdout())
			for _, out := range []struct {
				path  string
				write func(io.Writer) error
			}{{csvOut, res.WriteCSV}, {jsonOut, res.WriteJSON}, {htmlOut, res.WriteHTML}} {
				if out.path == "" {
					continue
				}
				if err := writeFile(out.path, out.write); err != nil {
					return err
				}
			}
			if res.Messages == 0 {
				return fmt.Errorf("nothing succeeded (%d failed)", res.Failed)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&brokers, "bootstrap-servers", "b", brokers, "brokers, comma separated (env KAFKA_BOOTSTRAP_SERVERS)")
	f.StringVarP(&cfg.Topic, "topic", "t", cfg.Topic, "topic (env KAFKA_TOPIC)")
	f.StringVarP(&cfg.Mode, "mode", "m", cfg.Mode, "produce, consume, round-trip or metadata")
	f.IntVarP(&cfg.Concurrency, "concurrency", "c", cfg.Concurrency, "closed loop: messages (requests) in flight")
	f.IntVarP(&cfg.MessageSize, "message-size", "s", cfg.MessageSize, "message value size in bytes")
	f.VarP(secondsOrDuration{&cfg.Duration}, "duration", "d", "measured run length (30s, 5m; 0 = until -n or Ctrl-C)")
	f.VarP(secondsOrDuration{&cfg.Warmup}, "warmup-duration", "w", "the same load, not measured, before the run (0 = none)")
	f.Int64VarP(&cfg.MessageCount, "message-count", "n", 0, "stop after this many messages (0 = no limit)")
	f.Float64Var(&cfg.RateLimit, "rate-limit", 0, "global offered rate, messages per second (0 = as fast as possible)")
	f.BoolVar(&cfg.OpenLoop, "open-loop", false, "send at --rate-limit regardless of acknowledgements; latency from intended send time")
	f.StringVar(&cfg.Acks, "acks", cfg.Acks, "0, 1, -1 or all")
	f.BoolVar(&cfg.Idempotent, "idempotent", false, "idempotent producer (needs --acks all)")
	f.StringVar(&cfg.Compression, "compression", cfg.Compression, "none, gzip, snappy, lz4 or zstd")
	f.IntVar(&cfg.LingerMs, "linger-ms", cfg.LingerMs, "producer linger")
	f.IntVar(&cfg.BatchSize, "batch-size", cfg.BatchSize, "producer batch size in bytes")
	f.IntVar(&cfg.MaxInflight, "max-inflight-requests", cfg.MaxInflight, "produce requests in flight per broker (without --idempotent)")
	f.IntVar(&requestTimeoutMs, "request-timeout-ms", 30000, "produce request timeout")
	f.IntVar(&msgTOMs, "message-timeout-ms", 60000, "give up on a message after this long")
	f.BoolVar(&cfg.CreateTopic, "create-topic", false, "create the topic first (-p partitions, -r replicas)")
	f.BoolVar(&cfg.DeleteTopicAfter, "delete-topic-after", false, "delete the topic when done")
	f.Int32VarP(&cfg.Partitions, "partitions", "p", cfg.Partitions, "partitions for --create-topic")
	f.Int16VarP(&cfg.ReplicationFactor, "replication-factor", "r", cfg.ReplicationFactor, "replication factor for --create-topic")
	f.StringVar(&cfg.KeyPattern, "key-pattern", cfg.KeyPattern, "random, sequential, fixed or none")
	f.StringVar(&cfg.PayloadPattern, "payload-pattern", cfg.PayloadPattern, "random, zeros or text")
	f.StringVar(&cfg.ConsumerGroup, "consumer-group", "", "consume mode: read as a member of this group (default: assign every partition)")
	f.IntVar(&reportSecs, "report-interval-secs", 5, "seconds between progress lines (0 = none)")
	f.StringVar(&csvOut, "csv-output", "", "write the result as CSV (one header, one row)")
	f.StringVar(&jsonOut, "json-output", "", "write the result as JSON (input of bench compare)")
	f.StringVar(&htmlOut, "html-output", "", "write an offline HTML report with throughput and latency plots")
	f.StringVar(&cfg.Label, "label", "", "a name for this run in reports")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines")
	cmd.AddCommand(&cobra.Command{
		Use:   "compare A.json B.json",
		Short: "Print B against A: throughput, latency percentiles and B/A ratios",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := bench.ReadResult(args[0])
			if err != nil {
				return err
			}
			b, err := bench.ReadResult(args[1])
			if err != nil {
				return err
			}
			bench.Compare(cmd.OutOrStdout(), a, b, runName(a, "A"), runName(b, "B"))
			return nil
		},
	})
	return cmd
}

func runName(r *bench.Result, dflt string) string {
	if r.Label != "" {
		return r.Label
	}
	return dflt
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
