package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronik-go/chronik/internal/perf"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func listenAddr(port string) string {
	if strings.Contains(port, ":") {
		return port
	}
	return ":" + port
}

// NewGatewayCommand is `chronik gateway`: HTTP → Kafka.
func NewGatewayCommand() *cobra.Command {
	cfg := perf.DefaultGatewayConfig()
	brokers := envOr("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
	cfg.Topic = envOr("KAFKA_TOPIC", cfg.Topic)
	listen := envOr("LISTEN_PORT", "8080")
	cfg.Acks = envOr("KAFKA_ACKS", cfg.Acks)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "HTTP → Kafka gateway: POST /produce, /produce/batch, /produce/fire/batch",
		Long: `An HTTP gateway that produces to Kafka (the original chronik-perf ingestor's API).

  POST /produce             {"topic"?, "key"?, "value" | "value_b64", "headers"?} → {"partition","offset"}
  POST /produce/batch       [records] → {"produced","errors"} once every record is acknowledged
  POST /produce/fire/batch  [records] → {"produced","errors":0} as soon as they are queued;
                            429 + Retry-After when the producer buffer cannot take the batch
  GET  /health, /metrics (JSON), /metrics/prometheus

Environment: KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC, LISTEN_PORT, KAFKA_ACKS (flags win).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Brokers = strings.Split(brokers, ",")
			cfg.Listen = listenAddr(listen)
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			g, err := perf.NewGateway(cfg)
			if err != nil {
				return err
			}
			defer g.Close()
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Logger.Info("gateway listening", "addr", ln.Addr().String(), "brokers", brokers, "topic", cfg.Topic, "acks", cfg.Acks)
			return g.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&brokers, "bootstrap-servers", "b", brokers, "brokers (env KAFKA_BOOTSTRAP_SERVERS)")
	f.StringVarP(&cfg.Topic, "topic", "t", cfg.Topic, "default topic (env KAFKA_TOPIC)")
	f.StringVar(&listen, "listen", listen, "port or host:port (env LISTEN_PORT)")
	f.StringVar(&cfg.Acks, "acks", cfg.Acks, "0, 1 or all (env KAFKA_ACKS)")
	f.Int64Var(&cfg.FireBufferRecords, "fire-buffer-records", cfg.FireBufferRecords, "fired records queued before /produce/fire/batch answers 429")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "largest request body (413 above)")
	f.DurationVar(&cfg.DeliveryTimeout, "delivery-timeout", cfg.DeliveryTimeout, "give up on a record after this long")
	f.DurationVar(&cfg.Linger, "linger", cfg.Linger, "producer linger")
	f.StringVar(&cfg.Compression, "compression", cfg.Compression, "none, snappy, lz4, zstd or gzip")
	return cmd
}

// NewDrainCommand is `chronik drain`: consume and export what was read.
func NewDrainCommand() *cobra.Command {
	cfg := perf.DrainConfig{Topic: envOr("KAFKA_TOPIC", "perf-test"), Group: os.Getenv("CONSUMER_GROUP")}
	brokers := envOr("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
	listen := envOr("LISTEN_PORT", "8081")
	cmd := &cobra.Command{
		Use:     "drain",
		Aliases: []string{"consumer"},
		Short:   "Consume a topic and export consumed, bytes, errors, rates and end-to-end latency over HTTP",
		Long: `Consume a topic (every partition from the beginning, as the original
chronik-perf consumer, or as a member of --group) and export what was read:
GET /metrics (JSON), /metrics/prometheus, /health. End-to-end latency comes
from the "sent_us" header that chronik loadtest stamps (or chronik bench
round-trip payloads).

Environment: KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC, LISTEN_PORT, CONSUMER_GROUP.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Brokers = strings.Split(brokers, ",")
			cfg.Listen = listenAddr(listen)
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := perf.NewDrain(ctx, cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return err
			}
			go func() { _ = d.Serve(ctx, ln) }()
			cfg.Logger.Info("drain listening", "addr", ln.Addr().String(), "topic", cfg.Topic, "group", cfg.Group)
			go func() {
				t := time.NewTicker(10 * time.Second)
				defer t.Stop()
				for {
					select {
					case <-t.C:
						s := d.Stats()
						cfg.Logger.Info("progress", "consumed", s.Consumed, "rate_msg_per_sec", int64(s.RateMsgPerSec), "errors", s.Errors, "e2e_p99_ms", s.E2EP99Ms)
					case <-ctx.Done():
						return
					}
				}
			}()
			return d.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&brokers, "bootstrap-servers", "b", brokers, "brokers (env KAFKA_BOOTSTRAP_SERVERS)")
	f.StringVarP(&cfg.Topic, "topic", "t", cfg.Topic, "topic (env KAFKA_TOPIC)")
	f.StringVar(&listen, "listen", listen, "port or host:port (env LISTEN_PORT)")
	f.StringVarP(&cfg.Group, "group", "g", cfg.Group, "consume as a member of this group (env CONSUMER_GROUP; default: assign every partition)")
	return cmd
}

// NewLoadtestCommand is `chronik loadtest`: virtual users against the gateway.
func NewLoadtestCommand() *cobra.Command {
	var (
		url, profile, stagesFlag, jsonOut string
		vuScale, timeScale                float64
		batch, size                       int
		fire, quiet                       bool
		timeout                           time.Duration
		report                            int
		topic                             string
	)
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Ramp virtual users against the gateway (profiles load, max-load, stress; replaces k6)",
		Long: `Ramp virtual users against chronik gateway, as the original's k6 scripts did.

Profiles (the original's stages):
  load      30s→50, 1m→200, 1m→500, 1m→200, 30s→0; every 3rd iteration one 1 KiB
            record to /produce, else 10 × 1 KiB to /produce/batch; 10 ms sleep
  max-load  30s→100, 1m→500, 2m→2000, 3m→5000, 2m→2000, 1m→0; 10 × 1 KiB batches
  stress    30s→200, 1m→1000, 2m→3000, 5m→5000, 3m→8000, 2m→3000, 1m→0;
            100 × 256 B batches (the original's Tests 5–7)

--vu-scale and --time-scale shrink a profile for a small machine; --stages
replaces its stages ("30s:50,1m:200,30s:0"). --fire uses /produce/fire/batch
(429s are waited out and retried, never dropped). Every record carries a
"sent_us" header for the drain's end-to-end latency.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, ok := perf.Profiles[profile]
			if !ok {
				return fmt.Errorf("unknown profile %q (load, max-load, stress)", profile)
			}
			if stagesFlag != "" {
				st, err := perf.ParseStages(stagesFlag)
				if err != nil {
					return err
				}
				p.Stages = st
			}
			if vuScale <= 0 || timeScale <= 0 {
				return fmt.Errorf("scales must be positive")
			}
			p.Stages = perf.Scale(p.Stages, vuScale, timeScale)
			if batch > 0 {
				p.Batch = batch
			}
			if size > 0 {
				p.Size = size
			}
			cfg := perf.LoadConfig{URL: strings.TrimRight(url, "/"), Profile: p, Fire: fire, Timeout: timeout, Topic: topic,
				ReportInterval: time.Duration(report) * time.Second}
			if !quiet {
				cfg.Progress = cmd.ErrOrStderr()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := perf.RunLoad(ctx, cfg)
			if err != nil {
				return err
			}
			res.WriteSummary(cmd.OutOrStdout())
			if jsonOut != "" {
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
					return err
				}
			}
			if res.Errors > 0 {
				return fmt.Errorf("%d errors", res.Errors)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", envOr("INGESTOR_URL", "http://localhost:8080"), "the gateway (env INGESTOR_URL)")
	f.StringVarP(&profile, "profile", "p", "load", "load, max-load or stress")
	f.StringVar(&stagesFlag, "stages", "", "custom stages, e.g. 30s:50,1m:200,30s:0")
	f.Float64Var(&vuScale, "vu-scale", 1, "multiply every stage's VU target")
	f.Float64Var(&timeScale, "time-scale", 1, "multiply every stage's duration")
	f.IntVar(&batch, "batch-size", 0, "records per batch (default: the profile's)")
	f.IntVar(&size, "message-size", 0, "bytes per record (default: the profile's)")
	f.BoolVar(&fire, "fire", false, "use /produce/fire/batch (fire and forget)")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "per-request timeout")
	f.IntVar(&report, "report-interval-secs", 5, "seconds between progress lines")
	f.StringVar(&jsonOut, "json-output", "", "write the summary as JSON")
	f.StringVarP(&topic, "topic", "t", "", "topic (default: the gateway's)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines")
	return cmd
}
