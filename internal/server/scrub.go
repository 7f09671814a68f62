package server

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/storage"
)

// scrubPause is the rest between two scrub passes over every partition. A
// pass already takes (sealed bytes / log.scrub.bytes.per.second); the
// pause keeps a broker with little data from re-reading it back to back.
const scrubPause = time.Minute

// scrubLoop checks the CRCs of every local partition's sealed segments,
// pass after pass, at most log.scrub.bytes.per.second. Recovery re-reads
// only the tail after the checkpoint and reads check only what they reach,
// so without it damage in old data would wait for the one consumer that
// replays it. Damage found goes the way a read's does: the log's OnDamage
// stops the group and supervise takes the partition offline.
func (s *Server) scrubLoop(ctx context.Context) error {
	for {
		s.scrubPass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(scrubPause):
		}
	}
}

// scrubPass scrubs each serving partition once, in name order.
func (s *Server) scrubPass(ctx context.Context) {
	s.mu.RLock()
	names := make([]string, 0, len(s.parts))
	for name := range s.parts {
		names = append(names, name)
	}
	s.mu.RUnlock()
	slices.Sort(names)
	pace := newPacer(float64(s.cfg.ScrubBytesPerSecond), time.Now())
	for _, name := range names {
		s.mu.RLock()
		p, ok := s.parts[name]
		s.mu.RUnlock()
		if !ok || ctx.Err() != nil {
			continue // taken offline or deleted since the pass began
		}
		s.scrubPartition(ctx, name, p, pace)
	}
}

func (s *Server) scrubPartition(ctx context.Context, name string, p *partition.Partition, pace *pacer) {
	res, err := p.Log.Scrub(ctx, func(ctx context.Context, n int) error {
		s.metrics.ScrubBytes.Add(float64(n))
		return pace.wait(ctx, n)
	})
	switch {
	case errors.Is(err, storage.ErrCorrupt):
		s.metrics.ScrubDamage.Inc()
		s.log.Error("scrub found damage; the partition goes offline", "partition", name, "err", err)
	case err != nil && ctx.Err() == nil:
		s.log.Warn("scrub", "partition", name, "err", err)
	default:
		s.log.Debug("scrubbed", "partition", name, "segments", res.Segments, "bytes", res.Bytes)
	}
}

// pacer spreads reads so that, since start, no more than rate bytes per
// second went out on average. It keeps no credit across passes (a new
// pacer per pass), so an idle pause never turns into a burst.
type pacer struct {
	rate  float64 // bytes per second
	start time.Time
	sent  float64
}

func newPacer(rate float64, start time.Time) *pacer { return &pacer{rate: rate, start: start} }

// wait blocks until n more bytes fit the rate, or ctx ends.
func (p *pacer) wait(ctx context.Context, n int) error {
	due := p.start.Add(time.Duration(p.sent / p.rate * float64(time.Second)))
	p.sent += float64(n)
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
