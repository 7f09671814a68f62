package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"

	"github.com/chronik-go/chronik/internal/wal"
)

// BenchmarkAppend measures durable appends through the committer into
// partition logs: profile × writers × partitions × append size. Each op is
// one entry appended and acknowledged as durable. Single-writer runs also
// report latency percentiles (p50-us, p99-us).
//
//	go test -run '^$' -bench 'BenchmarkAppend/' ./internal/storage
func BenchmarkAppend(b *testing.B) {
	for _, prof := range wal.ProfileNames() {
		for _, writers := range []int{1, 128} {
			for _, parts := range []int{1, 16, 256} {
				for _, size := range []int{256, 16 << 10} {
					name := fmt.Sprintf("profile=%s/writers=%d/partitions=%d/size=%d", prof, writers, parts, size)
					b.Run(name, func(b *testing.B) { benchAppend(b, prof, writers, parts, size) })
				}
			}
		}
	}
}

// appender serialises the appends of one partition log, as the Raft driver
// does: each writer claims the next index under the lock and submits.
type appender struct {
	mu   sync.Mutex
	l    *Log
	next uint64
	off  int64
}

func (a *appender) append(ctx context.Context, data []byte, count uint32) error {
	done := make(chan error, 1)
	a.mu.Lock()
	idx := a.next
	a.next++
	base := a.off
	a.off += int64(count)
	d := slices.Clone(data)
	copy(d, testPayload(base, count, 1, 0)[:20])
	err := a.l.Append(ctx, []*pb.Entry{ent(idx, 1, d)}, nil, func(err error) { done <- err })
	a.mu.Unlock()
	if err != nil {
		return err
	}
	return <-done
}

func benchAppend(b *testing.B, profile string, writers, parts, size int) {
	c := startCommitter(b, profile)
	dir := b.TempDir()
	apps := make([]*appender, parts)
	o := testOptions()
	o.SegmentBytes = 256 << 20
	o.IndexIntervalBytes = 4096
	for i := range apps {
		l, err := Open(filepath.Join(dir, fmt.Sprint(i)), c, o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Close() })
		apps[i] = &appender{l: l, next: 1}
	}
	data := testPayload(0, 1, 1, size-20)
	var (
		n    atomic.Int64
		wg   sync.WaitGroup
		lats = make([][]time.Duration, writers)
	)
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				i := n.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				start := time.Now()
				if err := apps[(w+k*writers)%parts].append(ctx, data, 1); err != nil {
					b.Error(err)
					return
				}
				if writers == 1 {
					lats[w] = append(lats[w], time.Since(start))
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if st := c.Stats(); st.Rounds > 0 {
		b.ReportMetric(float64(st.Writes)/float64(st.Rounds), "writes/round")
	}
	if writers == 1 && len(lats[0]) > 0 {
		l := lats[0]
		slices.Sort(l)
		b.ReportMetric(float64(l[len(l)/2].Microseconds()), "p50-us")
		b.ReportMetric(float64(l[len(l)*99/100].Microseconds()), "p99-us")
	}
}

// BenchmarkRawDisk measures the disk under the test directory without
// Chronik, as the baseline for BenchmarkAppend:
//   - seq-1MiB-fdatasync: sequential 1 MiB writes, fdatasync after each (MB/s);
//   - append-300B-fdatasync: one writer appending 300 bytes and calling
//     fdatasync each time (latency percentiles).
func BenchmarkRawDisk(b *testing.B) {
	b.Run("seq-1MiB-fdatasync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		b.SetBytes(int64(len(buf)))
		b.ResetTimer()
		for range b.N {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, files := range []int{16, 256} {
		// The pattern of a round that touches many partitions: 16 KiB to
		// each of N files, then all their fdatasyncs concurrently.
		b.Run(fmt.Sprintf("files-%d-16KiB-fdatasync", files), func(b *testing.B) {
			dir := b.TempDir()
			fs := make([]*os.File, files)
			for i := range fs {
				f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				fs[i] = f
			}
			buf := make([]byte, 16<<10)
			b.SetBytes(int64(len(buf) * files))
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for _, f := range fs {
					if _, err := f.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				for _, f := range fs {
					wg.Add(1)
					go func() { defer wg.Done(); _ = unix.Fdatasync(int(f.Fd())) }()
				}
				wg.Wait()
			}
		})
	}
	b.Run("append-300B-fdatasync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 300)
		lats := make([]time.Duration, 0, b.N)
		b.SetBytes(int64(len(buf)))
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
			lats = append(lats, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lats)
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds()), "p50-us")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-us")
	})
}
