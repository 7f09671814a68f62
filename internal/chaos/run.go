package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RunConfig describes one fault run: workload W1 (and W7 if EndOffsets)
// under a seeded schedule of faults.
type RunConfig struct {
	Seed     uint64
	Duration time.Duration // of the fault schedule; load runs through it
	Faults   []Fault
	Nodes    int // 3 for the cluster, 1 for standalone
	// Binary is the chronik binary; Dir holds data directories and the
	// history (history.jsonl).
	Binary, Dir string
	// EndOffsets polls every partition's end offset during the run (W7).
	EndOffsets bool
	// Producers is the number of concurrent produce operations (each its
	// own history process); 8 if zero.
	Producers int
	// DeliveryTimeout bounds how long the producer retries a record (30 s
	// if zero). A timeout shorter than a fault leaves produces with an
	// unknown outcome, which is what exercises the checker's info path.
	DeliveryTimeout time.Duration
	Logf            func(format string, args ...any)
}

// Validate checks the configuration.
func (c *RunConfig) Validate() error {
	switch {
	case c.Duration <= 0:
		return errors.New("duration must be positive")
	case len(c.Faults) == 0:
		return errors.New("no faults")
	case c.Nodes != 1 && c.Nodes != 3:
		return errors.New("nodes must be 1 or 3")
	case c.Binary == "" || c.Dir == "":
		return errors.New("binary and dir are required")
	}
	for _, f := range c.Faults {
		if f.networked() && c.Nodes < 3 {
			return fmt.Errorf("fault %s needs the node links of three nodes", f)
		}
	}
	return nil
}

// Report is what a run did and what the checker found.
type Report struct {
	Seed     uint64   `json:"seed"`
	Faults   []Fault  `json:"faults"`
	Nodes    int      `json:"nodes"`
	Duration string   `json:"duration"`
	History  string   `json:"history"`
	HTML     string   `json:"html"` // the report page (WriteReport)
	Log      []string `json:"log"`  // the injections, with times
	Replay   string   `json:"replay"`
	Result   *Result  `json:"result"`
}

// ReplayCommand is the command that runs the same schedule again.
func ReplayCommand(cfg *RunConfig) string {
	s := fmt.Sprintf("go run ./tests/chaos/cmd/chaos -seed %d -duration %s -faults %s -nodes %d", cfg.Seed, cfg.Duration, FormatFaults(cfg.Faults), cfg.Nodes)
	if cfg.EndOffsets {
		s += " -end-offsets"
	}
	if cfg.DeliveryTimeout != 0 && cfg.DeliveryTimeout != 30*time.Second {
		s += " -delivery-timeout " + cfg.DeliveryTimeout.String()
	}
	return s
}

const partitions = 3

type runner struct {
	cfg     *RunConfig
	cluster *Cluster
	hist    *Writer
	topic   string
	mu      sync.Mutex
	log     []string
}

func (r *runner) logf(format string, args ...any) {
	line := fmt.Sprintf("t=%.1fs ", float64(r.hist.Now())/1e9) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.log = append(r.log, line)
	r.mu.Unlock()
	if r.cfg.Logf != nil {
		r.cfg.Logf("%s", line)
	}
}

// Run starts the brokers, runs the workload under the faults, heals,
// drains, and checks the history. An error means the run itself could not
// be carried out (a broker would not start, the drain never finished); the
// checker's verdict is in Report.Result.
func Run(ctx context.Context, cfg RunConfig) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("chaos config: %w", err)
	}
	if cfg.Producers == 0 {
		cfg.Producers = 8
	}
	if cfg.DeliveryTimeout == 0 {
		cfg.DeliveryTimeout = 30 * time.Second
	}
	rep := &Report{Seed: cfg.Seed, Faults: cfg.Faults, Nodes: cfg.Nodes, Duration: cfg.Duration.String(), Replay: ReplayCommand(&cfg),
		History: filepath.Join(cfg.Dir, "history.jsonl")}
	f, err := os.Create(rep.History)
	if err != nil {
		return rep, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	r := &runner{cfg: &cfg, hist: NewWriter(f), topic: "w1"}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	steps := schedule(rng, cfg.Faults, partitions, cfg.Duration)

	extra := []string{}
	if cfg.Nodes > 1 {
		// Two of three in sync for acks=all, as Kafka's replication tests
		// run; a short lag time so a dead follower leaves the ISR quickly.
		extra = append(extra, "--min-insync-replicas", "2", "--replica-lag-time-max-ms", "2000")
	}
	disk := 0
	if slices.Contains(cfg.Faults, DiskFull) {
		disk = 256
	}
	c, err := StartCluster(ctx, ClusterConfig{Binary: cfg.Binary, Dir: cfg.Dir, Nodes: cfg.Nodes, Extra: extra, DiskMB: disk,
		PowerFS: slices.Contains(cfg.Faults, PowerLoss), Seed: cfg.Seed, Logf: cfg.Logf})
	if err != nil {
		return rep, err
	}
	defer c.Close()
	r.cluster = c
	r.logf("seed %d, %d nodes, faults %s, schedule of %d steps", cfg.Seed, cfg.Nodes, FormatFaults(cfg.Faults), len(steps))
	if err := r.createTopic(ctx); err != nil {
		return rep, err
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	prodErr := r.startProducers(ctx, stop, &wg)
	if cfg.EndOffsets {
		wg.Add(1)
		go func() { defer wg.Done(); r.pollEndOffsets(ctx, stop) }()
	}
	if slices.Contains(cfg.Faults, QuorumLoss) {
		wg.Add(1)
		go func() { defer wg.Done(); r.probe(ctx, stop) }()
	}
	var runErr error
	for _, s := range steps {
		if runErr = r.inject(ctx, s); runErr != nil {
			break
		}
	}
	if runErr == nil {
		runErr = sleep(ctx, 2*time.Second) // healthy load after the last fault
	}
	r.logf("healing")
	if err := c.Heal(ctx); err != nil && runErr == nil {
		runErr = err
	}
	close(stop)
	wg.Wait()
	if err := <-prodErr; err != nil && runErr == nil {
		runErr = err
	}
	if runErr == nil {
		runErr = r.drain(ctx)
	}
	if runErr == nil && cfg.Nodes > 1 {
		runErr = r.compareReplicas(ctx)
	}
	r.mu.Lock()
	rep.Log = append([]string(nil), r.log...)
	r.mu.Unlock()
	if err := r.hist.Flush(); err != nil {
		return rep, err
	}
	// The history is checked and the page written even when the run could
	// not be completed (a node that would not start again): what happened
	// until then is evidence too. The error still says the run failed.
	title := fmt.Sprintf("Chronik fault run: seed %d, %d nodes, %s", cfg.Seed, cfg.Nodes, FormatFaults(cfg.Faults))
	if runErr != nil {
		title += " (run not completed: " + runErr.Error() + ")"
	}
	if err := r.checkAndReport(f, rep, title); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return rep, fmt.Errorf("chaos run (replay: %s): %w", rep.Replay, runErr)
	}
	return rep, nil
}

func (r *runner) checkAndReport(f *os.File, rep *Report, title string) error {
	if _, err := f.Seek(0, 0); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	events, err := ReadHistory(f)
	if err != nil {
		return err
	}
	rep.Result = Check(events, Options{})
	page := filepath.Join(r.cfg.Dir, "report.html")
	pf, err := os.Create(page)
	if err != nil {
		return fmt.Errorf("report page: %w", err)
	}
	err = WriteReport(pf, title, events, rep.Result, rep.Log)
	if cerr := pf.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("report page: %w", cerr)
	}
	if err != nil {
		return err
	}
	rep.HTML = page
	return nil
}

// compareReplicas stops every node cleanly and compares the committed
// logs of every replica (W8); the outcome goes into the history.
func (r *runner) compareReplicas(ctx context.Context) error {
	if err := r.cluster.Stop(); err != nil {
		return fmt.Errorf("clean stop before the replica comparison: %w", err)
	}
	dirs := map[int]string{}
	for _, nd := range r.cluster.Nodes {
		dirs[nd.ID] = nd.Dir
	}
	evs, err := CompareReplicas(ctx, dirs)
	if err != nil {
		return err
	}
	compared, logs := int64(0), 0
	for _, e := range evs {
		if e.Type == OK {
			compared += *e.Offset
			logs++
		}
		if e.Type == Info {
			r.logf("replica comparison of %s not done: %s", e.Value, e.Error)
		}
		if err := r.hist.Write(e); err != nil {
			return err
		}
	}
	r.logf("replicas compared: %d logs, %d committed entries held by two or more nodes", logs, compared)
	return nil
}

func (r *runner) client(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.cluster.Seeds()...)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return cl, nil
}

func (r *runner) createTopic(ctx context.Context) error {
	cl, err := r.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rf := int16(min(3, len(r.cluster.Nodes)))
	var last error
	for range 100 { // the metadata group may still be electing
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := adm.CreateTopic(cctx, partitions, rf, nil, r.topic)
		cancel()
		if err == nil && res.Err == nil {
			for p := range int32(partitions) {
				if _, err := r.cluster.Leader(ctx, r.topic, p); err != nil {
					return err
				}
			}
			return nil
		}
		last = errors.Join(err, res.Err)
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("create topic %s: %w", r.topic, last)
}

// startProducers runs cfg.Producers closed-loop produce processes over two
// idempotent acks=all franz-go clients until stop closes. Each process has
// one operation outstanding at a time, as the history's pairing needs.
// Every error is recorded as info: franz-go retries retriable errors
// itself, so what reaches us (a delivery timeout, a cancelled context) does
// not say whether the broker appended the batch.
func (r *runner) startProducers(ctx context.Context, stop <-chan struct{}, wg *sync.WaitGroup) <-chan error {
	errc := make(chan error, 1)
	var clients []*kgo.Client
	for range 2 {
		cl, err := r.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RecordDeliveryTimeout(r.cfg.DeliveryTimeout), kgo.ProducerLinger(time.Millisecond))
		if err != nil {
			for _, c := range clients {
				c.Close()
			}
			errc <- err
			return errc
		}
		clients = append(clients, cl)
	}
	var pw sync.WaitGroup
	for p := 1; p <= r.cfg.Producers; p++ {
		cl := clients[p%len(clients)]
		pw.Add(1)
		go func() {
			defer pw.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				// One partition per slot: a partition whose leader is
				// stuck holds only its own slots, and the others go on
				// showing whether the rest of the cluster serves.
				part := int32(p % partitions)
				v := fmt.Sprintf("p%d-%06d", p, i)
				_ = r.hist.Write(Event{Process: p, Type: Invoke, F: Produce, Topic: r.topic, Partition: part, Value: v})
				pctx, cancel := context.WithTimeout(ctx, r.cfg.DeliveryTimeout+10*time.Second)
				res := cl.ProduceSync(pctx, &kgo.Record{Topic: r.topic, Partition: part, Value: []byte(v)})
				cancel()
				e := Event{Process: p, F: Produce, Topic: r.topic, Partition: part, Value: v}
				if rec, err := res.First(); err != nil {
					e.Type, e.Error = Info, err.Error()
				} else {
					e.Type, e.Offset, e.Partition = OK, Off(rec.Offset), rec.Partition
				}
				_ = r.hist.Write(e)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		pw.Wait()
		for _, c := range clients {
			c.Close()
		}
		errc <- nil
	}()
	return errc
}

// probe invokes an acks=all produce every 250 ms, each its own history
// process (from 1000 up), without waiting for the earlier ones (W4): the
// W1 producers keep one produce outstanding each and invoke nothing new
// while a quorum is lost, and a client cannot take back a record already
// sent, so only fresh invocations show whether anything invoked during a
// quorum loss was acknowledged before the heal.
func (r *runner) probe(ctx context.Context, stop <-chan struct{}) {
	cl, err := r.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(r.cfg.DeliveryTimeout), kgo.ProducerLinger(0))
	if err != nil {
		r.logf("probe: %v", err)
		return
	}
	var out sync.WaitGroup
	defer func() { cl.Close(); out.Wait() }() // Close fails what is still buffered
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		proc, part := 1000+i, int32(i%partitions)
		v := fmt.Sprintf("q-%06d", i)
		_ = r.hist.Write(Event{Process: proc, Type: Invoke, F: Produce, Topic: r.topic, Partition: part, Value: v})
		out.Add(1)
		// A record that waits in the client's buffer past this is given
		// up (one already sent waits for its answer or the delivery timeout).
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		cl.Produce(pctx, &kgo.Record{Topic: r.topic, Partition: part, Value: []byte(v)}, func(rec *kgo.Record, err error) {
			defer out.Done()
			cancel()
			e := Event{Process: proc, F: Produce, Topic: r.topic, Partition: part, Value: v}
			if err != nil {
				e.Type, e.Error = Info, err.Error()
			} else {
				e.Type, e.Offset, e.Partition = OK, Off(rec.Offset), rec.Partition
			}
			_ = r.hist.Write(e)
		})
	}
}

// pollEndOffsets asks for every partition's end offset (the high
// watermark) every 200 ms (W7). One process per partition keeps the
// history's one-operation-per-process rule with one request for all.
func (r *runner) pollEndOffsets(ctx context.Context, stop <-chan struct{}) {
	cl, err := r.client()
	if err != nil {
		r.logf("end-offset poller: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for p := range int32(partitions) {
			_ = r.hist.Write(Event{Process: 100 + int(p), Type: Invoke, F: EndOffset, Topic: r.topic, Partition: p})
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ends, err := adm.ListEndOffsets(qctx, r.topic)
		cancel()
		// A shard error (one leader failed) leaves the other leaders'
		// answers in ends: each partition is judged by its own.
		var shards *kadm.ShardErrors
		partial := errors.As(err, &shards)
		for p := range int32(partitions) {
			e := Event{Process: 100 + int(p), F: EndOffset, Topic: r.topic, Partition: p}
			o, ok := ends.Lookup(r.topic, p)
			switch {
			case err != nil && (!partial || !ok):
				e.Type, e.Error = Info, err.Error()
			case !ok:
				e.Type, e.Error = Info, "no answer"
			case o.Err != nil:
				// An error answer says nothing about the log; not an offset.
				e.Type, e.Error = Fail, o.Err.Error()
			default:
				e.Type, e.Offset = OK, Off(o.Offset)
			}
			_ = r.hist.Write(e)
		}
	}
}

// drain waits for the healed cluster to be ready, then reads every
// partition from the start to its end offset, one reader process and
// session per partition.
func (r *runner) drain(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := r.cluster.WaitReady(rctx); err != nil {
		return err
	}
	for p := range int32(partitions) {
		if _, err := r.cluster.Leader(rctx, r.topic, p); err != nil {
			return err
		}
	}
	cl, err := r.client()
	if err != nil {
		return err
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(rctx, r.topic)
	cl.Close()
	if err != nil {
		return fmt.Errorf("end offsets for the drain: %w", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, partitions)
	for p := range int32(partitions) {
		o, ok := ends.Lookup(r.topic, p)
		if !ok {
			return fmt.Errorf("no end offset for %s-%d", r.topic, p)
		}
		if o.Err != nil {
			return fmt.Errorf("end offset of %s-%d: %w", r.topic, p, o.Err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = r.readPartition(rctx, p, o.Offset)
		}()
	}
	wg.Wait()
	var total int64
	for p := range int32(partitions) {
		o, _ := ends.Lookup(r.topic, p)
		total += o.Offset
	}
	r.logf("drained %d records", total)
	return errors.Join(errs...)
}

func (r *runner) readPartition(ctx context.Context, p int32, end int64) error {
	proc := 200 + int(p)
	cl, err := r.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: {p: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return err
	}
	defer cl.Close()
	var next int64
	for next < end {
		_ = r.hist.Write(Event{Process: proc, Type: Invoke, F: ReadOp, Topic: r.topic, Partition: p, Session: 1})
		fs := cl.PollFetches(ctx)
		e := Event{Process: proc, Type: OK, F: ReadOp, Topic: r.topic, Partition: p, Session: 1}
		fs.EachRecord(func(rec *kgo.Record) {
			e.Reads = append(e.Reads, Read{rec.Offset, string(rec.Value)})
			next = rec.Offset + 1
		})
		_ = r.hist.Write(e)
		if ctx.Err() != nil {
			return fmt.Errorf("drain %s-%d stopped at offset %d of %d: %w", r.topic, p, next, end, ctx.Err())
		}
	}
	return nil
}
