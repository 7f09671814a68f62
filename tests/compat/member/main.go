// Command member is one consumer-group member of the compat tests, built on
// one of the Go clients (franz-go, sarama, segmentio/kafka-go). It speaks
// the same JSON-lines protocol as the script members in ../clients: the
// configuration as one JSON object on stdin, then events on stdout:
//
//	{"ev":"owned","partitions":[0,3]}      after every change of ownership
//	{"ev":"records","recs":[[0,17],...]}  partition/offset of processed records
//	{"ev":"error","msg":"..."}
//
// Offsets are committed synchronously after the records are reported
// (processed). SIGTERM closes the client cleanly, which leaves the group
// (unless the member is static), and exits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// config is the member's configuration.
type config struct {
	Client         string `json:"client"` // franz-go, sarama, kafka-go
	Bootstrap      string `json:"bootstrap"`
	Group          string `json:"group"`
	Topic          string `json:"topic"`
	InstanceID     string `json:"instance_id"`
	Strategy       string `json:"strategy"` // range, roundrobin, sticky, cooperative-sticky, consumer (KIP-848)
	SessionTimeout int    `json:"session_timeout_ms"`
}

// out writes events, one JSON object per line.
type out struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *out) emit(v map[string]any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.enc.Encode(v)
}

func (o *out) owned(ps []int32) {
	ps = slices.Clone(ps)
	slices.Sort(ps)
	if ps == nil {
		ps = []int32{}
	}
	o.emit(map[string]any{"ev": "owned", "partitions": ps})
}

func (o *out) records(recs [][2]int64) {
	if len(recs) > 0 {
		o.emit(map[string]any{"ev": "records", "recs": recs})
	}
}

func (o *out) error(err error) { o.emit(map[string]any{"ev": "error", "msg": err.Error()}) }

func main() {
	var cfg config
	if err := json.NewDecoder(os.Stdin).Decode(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "config:", err)
		os.Exit(2)
	}
	o := &out{enc: json.NewEncoder(os.Stdout)}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	var err error
	switch cfg.Client {
	case "franz-go":
		err = runFranz(ctx, cfg, o)
	case "sarama":
		err = runSarama(ctx, cfg, o)
	case "kafka-go":
		err = runKafkaGo(ctx, cfg, o)
	default:
		err = fmt.Errorf("unknown client %q", cfg.Client)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		os.Exit(1)
	}
}

func session(cfg config) time.Duration {
	if cfg.SessionTimeout <= 0 {
		return 6 * time.Second
	}
	return time.Duration(cfg.SessionTimeout) * time.Millisecond
}

func runFranz(ctx context.Context, cfg config, o *out) error {
	var mu sync.Mutex
	owned := map[int32]bool{}
	report := func() {
		var ps []int32
		for p := range owned {
			ps = append(ps, p)
		}
		o.owned(ps)
	}
	change := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			if !add {
				// Commit what was processed before giving partitions up.
				if err := cl.CommitUncommittedOffsets(ctx); err != nil {
					o.error(fmt.Errorf("commit on revoke: %w", err))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range m[cfg.Topic] {
				if add {
					owned[p] = true
				} else {
					delete(owned, p)
				}
			}
			report()
		}
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Bootstrap), kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.SessionTimeout(session(cfg)), kgo.HeartbeatInterval(time.Second), kgo.ClientID("compat-member"),
		kgo.OnPartitionsAssigned(change(true)), kgo.OnPartitionsRevoked(change(false)), kgo.OnPartitionsLost(change(false))}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	switch cfg.Strategy {
	case "consumer":
		opts = append(opts, kgo.ServerSideBalancer())
	case "range":
		opts = append(opts, kgo.Balancers(kgo.RangeBalancer()))
	case "roundrobin":
		opts = append(opts, kgo.Balancers(kgo.RoundRobinBalancer()))
	case "sticky":
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()))
	case "cooperative-sticky":
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	default:
		return fmt.Errorf("franz-go: unknown strategy %q", cfg.Strategy)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close() // leaves the group (a static member stays)
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				o.error(fmt.Errorf("fetch %s[%d]: %w", t, p, err))
			}
		})
		var recs [][2]int64
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, [2]int64{int64(r.Partition), r.Offset}) })
		o.records(recs)
		if len(recs) > 0 {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
				o.error(fmt.Errorf("commit: %w", err))
			}
		}
	}
	return nil
}

// saramaHandler reports claims and processes records of one session.
type saramaHandler struct{ o *out }

func (h saramaHandler) Setup(s sarama.ConsumerGroupSession) error {
	var ps []int32
	for _, claimed := range s.Claims() {
		ps = append(ps, claimed...)
	}
	h.o.owned(ps)
	return nil
}

func (h saramaHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	h.o.owned(nil)
	return nil
}

func (h saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return nil
			}
			// Take what else is already there, process (report) it all,
			// then commit once.
			batch := []*sarama.ConsumerMessage{m}
		drain:
			for len(batch) < 500 {
				select {
				case m, ok := <-c.Messages():
					if !ok {
						break drain
					}
					batch = append(batch, m)
				default:
					break drain
				}
			}
			recs := make([][2]int64, len(batch))
			for i, m := range batch {
				recs[i] = [2]int64{int64(m.Partition), m.Offset}
			}
			h.o.records(recs)
			s.MarkMessage(batch[len(batch)-1], "")
			s.Commit()
		case <-s.Context().Done():
			return nil
		}
	}
}

func runSarama(ctx context.Context, cfg config, o *out) error {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "compat-member"
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Return.Errors = true
	c.Consumer.Group.Session.Timeout = session(cfg)
	c.Consumer.Group.Heartbeat.Interval = time.Second
	c.Consumer.MaxWaitTime = 200 * time.Millisecond
	if cfg.InstanceID != "" {
		c.Consumer.Group.InstanceId = cfg.InstanceID
	}
	switch cfg.Strategy {
	case "range":
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	case "roundrobin":
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	case "sticky":
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	default:
		return fmt.Errorf("sarama: unknown strategy %q", cfg.Strategy)
	}
	g, err := sarama.NewConsumerGroup([]string{cfg.Bootstrap}, cfg.Group, c)
	if err != nil {
		return err
	}
	defer g.Close() // leaves the group (a static member stays)
	go func() {
		for err := range g.Errors() {
			o.error(err)
		}
	}()
	for ctx.Err() == nil {
		if err := g.Consume(ctx, []string{cfg.Topic}, saramaHandler{o}); err != nil && ctx.Err() == nil {
			o.error(err)
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func runKafkaGo(ctx context.Context, cfg config, o *out) error {
	rc := kafka.ReaderConfig{Brokers: []string{cfg.Bootstrap}, GroupID: cfg.Group, Topic: cfg.Topic, StartOffset: kafka.FirstOffset,
		SessionTimeout: session(cfg), HeartbeatInterval: time.Second, MaxWait: 200 * time.Millisecond, CommitInterval: 0,
		ErrorLogger: kafka.LoggerFunc(func(f string, args ...any) { o.error(fmt.Errorf(f, args...)) })}
	switch cfg.Strategy {
	case "range":
		rc.GroupBalancers = []kafka.GroupBalancer{kafka.RangeGroupBalancer{}}
	case "roundrobin":
		rc.GroupBalancers = []kafka.GroupBalancer{kafka.RoundRobinGroupBalancer{}}
	default:
		return fmt.Errorf("kafka-go: unknown strategy %q", cfg.Strategy)
	}
	r := kafka.NewReader(rc)
	defer r.Close() // leaves the group
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			o.error(err)
			continue
		}
		o.records([][2]int64{{int64(m.Partition), m.Offset}})
		if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
			o.error(fmt.Errorf("commit: %w", err))
		}
	}
}
