package raftlog

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronik-go/chronik/internal/storage"
	"github.com/chronik-go/chronik/internal/wal"
)

// BenchmarkPropose measures committed proposals through single-voter Raft
// groups over durable logs: what a produce request pays below the Kafka
// layer. Compare with storage's BenchmarkAppend for the Raft overhead.
func BenchmarkPropose(b *testing.B) {
	for _, inflight := range []int{1, 2} {
		for _, parts := range []int{1, 16} {
			for _, size := range []int{256, 16 << 10} {
				b.Run(fmt.Sprintf("inflight=%d/writers=128/partitions=%d/size=%d", inflight, parts, size), func(b *testing.B) { benchPropose(b, inflight, 128, parts, size) })
			}
		}
	}
}

func benchPropose(b *testing.B, inflight, writers, parts, size int) {
	prof, _ := wal.ProfileByName("low")
	c, _ := wal.New(prof)
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { defer bg.Done(); _ = c.Run(ctx) }()
	groups := make([]*Group, parts)
	dir := b.TempDir()
	for i := range groups {
		l, err := storage.Open(filepath.Join(dir, fmt.Sprint(i)), c, storage.Options{Meta: meta, Logger: quiet(), RetentionAge: -1})
		if err != nil {
			b.Fatal(err)
		}
		g, _ := NewGroup(Config{GroupID: uint64(i + 2), NodeID: 1, Voters: []uint64{1}, Log: l, Meta: meta, Logger: quiet(), MaxInflightAppends: inflight})
		groups[i] = g
		bg.Add(1)
		go func() { defer bg.Done(); _ = g.Run(ctx) }()
		defer l.Close()
	}
	for _, g := range groups {
		for !g.Status().IsLeader {
			time.Sleep(time.Millisecond)
		}
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				if n.Add(1) > int64(b.N) {
					return
				}
				d := payload(1, size-12)
				if _, err := groups[(w+k*writers)%parts].ProposeWait(ctx, NewProposal(d, assign(d), false)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	cancel()
	bg.Wait()
}
