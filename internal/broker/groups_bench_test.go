package broker_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// BenchmarkOffsetCommit measures OffsetCommit next to its baseline, an
// acks=all produce of one small record to a one-partition topic (a commit
// is one such append to an offsets partition, plus the coordinator's hops):
// one client one request at a time, and 32 clients (connections) each with
// one request at a time.
func BenchmarkOffsetCommit(b *testing.B) {
	cfg := testbroker.Config(b.TempDir())
	cfg.OffsetsTopicPartitions = 8
	br := testbroker.Start(b, cfg)
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr), kgo.DefaultProduceTopic("bench"), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "bench"); err != nil {
		b.Fatal(err)
	}
	commitWith := func(adm *kadm.Client, group string, at int64) {
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: "bench", Partition: 0, At: at, LeaderEpoch: -1})
		if r, err := adm.CommitOffsets(ctx, group, os); err != nil || r.Error() != nil {
			b.Fatal(err, r.Error())
		}
	}
	produceWith := func(cl *kgo.Client) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("0123456789abcdef")}).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	commit := func(group string, at int64) { commitWith(adm, group, at) }
	produce := func() { produceWith(cl) }
	clients := make(chan *kgo.Client, 64)
	for range 64 {
		c, err := kgo.NewClient(kgo.SeedBrokers(br.Addr), kgo.DefaultProduceTopic("bench"), kgo.RequiredAcks(kgo.AllISRAcks()))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		clients <- c
	}
	commit("warm", 0)
	produce()
	b.Run("commit/serial", func(b *testing.B) {
		for i := range b.N {
			commit("serial", int64(i))
		}
	})
	b.Run("produce/serial", func(b *testing.B) {
		for range b.N {
			produce()
		}
	})
	var next atomic.Int64
	// RunParallel starts parallelism × GOMAXPROCS goroutines: about 32.
	par := (32 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	b.Run("commit/32-concurrent", func(b *testing.B) {
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			c := <-clients
			defer func() { clients <- c }()
			adm := kadm.NewClient(c)
			g := fmt.Sprint("par-", next.Add(1))
			for i := int64(0); pb.Next(); i++ {
				commitWith(adm, g, i)
			}
		})
	})
	b.Run("produce/32-concurrent", func(b *testing.B) {
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			c := <-clients
			defer func() { clients <- c }()
			for pb.Next() {
				produceWith(c)
			}
		})
	})
}
