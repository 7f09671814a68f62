// Command chaos runs one fault run by hand: it builds chronik, starts the
// brokers, runs workload W1 under a seeded fault schedule, heals, drains and
// checks the history; it prints the summary and exits 1 on an anomaly. The
// data directories, the history and the report page (report.html) stay in
// -dir for inspection. -check re-checks a kept history (-html renders its
// page again).
//
//	go run ./tests/chaos/cmd/chaos -seed 7 -duration 60s -faults f1,f3
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chronik-go/chronik/internal/chaos"
)

// errAnomalies makes the exit status 1 (anomalies) rather than 2 (the run
// itself failed).
var errAnomalies = errors.New("anomalies found")

func main() {
	err := run()
	switch {
	case errors.Is(err, errAnomalies):
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
}

func run() error {
	seed := flag.Uint64("seed", 0, "seed of the fault schedule (0: from the clock)")
	duration := flag.Duration("duration", 60*time.Second, "length of the fault schedule")
	faults := flag.String("faults", "f1,f2,f3", "faults: groups f1 … f6 and w4, or "+chaos.FormatFaults(chaos.AllFaults))
	nodes := flag.Int("nodes", 3, "3 (cluster) or 1 (standalone)")
	delivery := flag.Duration("delivery-timeout", 30*time.Second, "how long a record is retried; shorter than a fault leaves unknown outcomes")
	endOffsets := flag.Bool("end-offsets", false, "poll end offsets during the run (W7)")
	dir := flag.String("dir", "", "directory for data and the history (default: a new temporary directory, kept)")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	check := flag.String("check", "", "only check this history file")
	page := flag.String("html", "", "with -check: write the report page (throughput, latency, fault windows, anomalies) here")
	flag.Parse()

	if *check != "" {
		return checkFile(*check, *page, *asJSON)
	}
	fs, err := chaos.ParseFaults(*faults)
	if err != nil {
		return err
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "chaos-"); err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, err := chaos.BuildBinary(ctx, *dir)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	cfg := chaos.RunConfig{Seed: *seed, Duration: *duration, Faults: fs, Nodes: *nodes, Binary: bin, Dir: *dir, EndOffsets: *endOffsets, DeliveryTimeout: *delivery, Logf: logf}
	logf("seed %d; replay: %s", *seed, chaos.ReplayCommand(&cfg))
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		if rep != nil && rep.Result != nil {
			fmt.Print(rep.Result.Text(10))
			fmt.Printf("history: %s\nreport: %s\n", rep.History, rep.HTML)
		}
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		fmt.Println(string(b))
	} else {
		fmt.Print(rep.Result.Text(10))
		fmt.Printf("history: %s\nreport: %s\nreplay: %s\n", rep.History, rep.HTML, rep.Replay)
	}
	if !rep.Result.Valid() {
		return fmt.Errorf("seed %d: %w; replay: %s", *seed, errAnomalies, rep.Replay)
	}
	return nil
}

func checkFile(path, page string, asJSON bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	events, err := chaos.ReadHistory(f)
	if err != nil {
		return err
	}
	res := chaos.Check(events, chaos.Options{})
	if page != "" {
		pf, err := os.Create(page)
		if err != nil {
			return fmt.Errorf("report page: %w", err)
		}
		err = chaos.WriteReport(pf, "Chronik fault run: "+path, events, res, nil)
		if cerr := pf.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("report page: %w", cerr)
		}
		if err != nil {
			return err
		}
	}
	if asJSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return fmt.Errorf("result: %w", err)
		}
		fmt.Println(string(b))
	} else {
		fmt.Print(res.Text(10))
	}
	if !res.Valid() {
		return errAnomalies
	}
	return nil
}
