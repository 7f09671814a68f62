// Command chronik is the Chronik broker and its tools in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/chronik-go/chronik/internal/cli"
	"github.com/chronik-go/chronik/internal/config"
	"github.com/chronik-go/chronik/internal/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newRoot().Execute(); err != nil {
		// A server failure was logged through the configured logger
		// already; printing it again would make two lines of one cause.
		if !errors.As(err, new(loggedError)) {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

// loggedError is an error already reported in the server's log: main
// only turns it into the exit status.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "chronik",
		Short:         "Chronik: a Kafka-compatible streaming platform",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServer(), newVersion(), cli.NewGroupCommand(), cli.NewTopicCommand(), cli.NewProduceCommand(), cli.NewConsumeCommand(), cli.NewClusterCommand(), cli.NewQuotaCommand(), cli.NewBenchCommand(), cli.NewGatewayCommand(), cli.NewDrainCommand(), cli.NewLoadtestCommand())
	return root
}

func newServer() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "server",
		Aliases: []string{"start"},
		Short:   "Run a broker (standalone by default, data in ./data)",
		Long: `Run a Chronik broker.

Every setting can be given as a flag, as an environment variable or as a key
in a TOML config file (--config). Precedence: flag, then environment, then
config file, then the default.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Resolve(cmd.Flags(), os.Getenv)
			if err != nil {
				return err
			}
			log := newLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			server.Version = buildVersion()
			log.Info("starting chronik", "version", buildVersion(), "node_id", cfg.NodeID, "data_dir", cfg.DataDir)
			// Start-up errors (data directory locked, port in use) and a
			// critical task failing at run time both end here: one log line
			// naming the cause, and a non-zero exit status.
			if err := server.New(cfg, log).Run(ctx); err != nil {
				log.Error("chronik stopped", "err", err)
				return loggedError{err}
			}
			log.Info("chronik stopped")
			return nil
		},
	}
	config.Flags(cmd.Flags())
	return cmd
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "chronik", buildVersion())
		},
	}
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
