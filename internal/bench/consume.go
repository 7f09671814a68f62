package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// offsets lists the topic's start and end offsets per partition.
func (r *runner) offsets(ctx context.Context) (starts, ends map[int32]int64, err error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	get := func(list func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		lo, err := list(octx, r.cfg.Topic)
		if err != nil {
			return nil, err
		}
		if err := lo.Error(); err != nil {
			return nil, err
		}
		out := map[int32]int64{}
		lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		if len(out) == 0 {
			return nil, fmt.Errorf("topic %s has no partitions", r.cfg.Topic)
		}
		return out, nil
	}
	if starts, err = get(r.adm.ListStartOffsets); err != nil {
		return nil, nil, fmt.Errorf("list offsets of %s: %w", r.cfg.Topic, err)
	}
	if ends, err = get(r.adm.ListEndOffsets); err != nil {
		return nil, nil, fmt.Errorf("list offsets of %s: %w", r.cfg.Topic, err)
	}
	return starts, ends, nil
}

// consumer makes a consuming client: a group member, or one assigned
// every partition at the given offsets.
func (r *runner) consumer(at map[int32]int64, assigned chan<- struct{}) (*kgo.Client, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.FetchMaxBytes(64 << 20),
		kgo.FetchMaxPartitionBytes(8 << 20),
	}
	if r.cfg.ConsumerGroup != "" && r.cfg.Mode == ModeConsume {
		opts = append(opts, kgo.ConsumerGroup(r.cfg.ConsumerGroup), kgo.ConsumeTopics(r.cfg.Topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(30*time.Second),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
				select {
				case assigned <- struct{}{}:
				default:
				}
			}))
	} else {
		ps := map[int32]kgo.Offset{}
		for p, o := range at {
			ps[p] = kgo.NewOffset().At(o)
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.Topic: ps}))
	}
	return kgo.NewClient(opts...)
}

// consume reads the topic from its start until it reaches the end
// offsets seen when the run began (a catch-up read), the message count,
// or the duration, whichever comes first. Latency is each record's age
// when it arrived.
func (r *runner) consume(ctx context.Context) (*Result, error) {
	starts, ends, err := r.offsets(ctx)
	if err != nil {
		return nil, err
	}
	assigned := make(chan struct{}, 1)
	cons, err := r.consumer(starts, assigned)
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	if r.cfg.ConsumerGroup != "" {
		// The clock starts when the group has assigned the partitions: the
		// join (and the broker's initial rebalance delay) is not reading.
		select {
		case <-assigned:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(60 * time.Second):
			return nil, fmt.Errorf("group %s: no partitions assigned within 60 s", r.cfg.ConsumerGroup)
		}
	}
	remaining := map[int32]int64{}
	for p, e := range ends {
		if e > starts[p] {
			remaining[p] = e
		}
	}
	mctx, cancel := ctx, context.CancelFunc(func() {})
	if r.cfg.Duration > 0 {
		mctx, cancel = context.WithTimeout(ctx, r.cfg.Duration)
	}
	defer cancel()
	r.measure.Store(true)
	start := time.Now()
	stop := r.watch(mctx, start)
	limit := r.cfg.MessageCount
	for len(remaining) > 0 && mctx.Err() == nil && (limit <= 0 || r.c.msgs.Load() < limit) {
		fs := cons.PollFetches(mctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				r.c.fail(err)
			}
		})
		now := time.Now()
		fs.EachRecord(func(rec *kgo.Record) {
			r.c.msgs.Add(1)
			r.c.bytes.Add(int64(len(rec.Value)))
			r.lat.Record(int(rec.Partition), now.Sub(rec.Timestamp))
			if e, ok := remaining[rec.Partition]; ok && rec.Offset+1 >= e {
				delete(remaining, rec.Partition)
			}
		})
	}
	elapsed := time.Since(start)
	stop()
	res := r.result(start, elapsed)
	res.LatencyKind = "consume: record age on arrival (now − record timestamp)"
	return res, nil
}

// roundTrip produces while a consumer, started first at the end of the
// topic, reads the same records back: end-to-end latency is arrival time
// minus the send time stamped into the payload (the intended send time in
// an open loop).
func (r *runner) roundTrip(ctx context.Context) (*Result, error) {
	_, ends, err := r.offsets(ctx)
	if err != nil {
		return nil, err
	}
	cons, err := r.consumer(ends, nil)
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			now := time.Now()
			fs.EachRecord(func(rec *kgo.Record) {
				if len(rec.Value) < 8 || !r.measure.Load() {
					return
				}
				us := int64(binary.LittleEndian.Uint64(rec.Value))
				if us < r.measuredFrom.Load() {
					return // sent during the warm-up
				}
				sent := time.UnixMicro(us)
				r.e2e.Record(int(rec.Partition), now.Sub(sent))
			})
		}
	})
	start, elapsed := r.phases(ctx, func(ctx context.Context, limit int64) { r.producePhase(ctx, limit, true) })
	// Wait (up to 60 s) until the consumer has seen every acknowledged
	// record of the measured phase.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		h, _ := r.e2e.Snapshot()
		if h.TotalCount() >= r.c.msgs.Load() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	res := r.result(start, elapsed)
	res.LatencyKind = r.produceLatencyKind()
	h, clamped := r.e2e.Snapshot()
	e2e := Summarise(h, clamped)
	res.EndToEnd = &e2e
	if e2e.Count < res.Messages {
		res.Errors["round-trip: acknowledged but not read back within 60 s"] = res.Messages - e2e.Count
	}
	return res, nil
}
