package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ScrubResult says what one pass of Scrub did.
type ScrubResult struct {
	Bytes    int64 // segment bytes whose frames were checked
	Segments int   // sealed segments checked whole
}

// Scrub checks the CRC of every frame of every sealed segment, oldest first,
// so that damage in data nobody reads is found before a reader meets it
// (recovery only re-reads the tail after the checkpoint). pace is called
// with the bytes about to be read, before each chunk, and may block to
// bound the rate; its error ends the pass. Damage is recorded as a read's
// is (Damaged, Options.OnDamage) and returned as a *CorruptionError. A
// segment that retention deletes or truncation rewrites under the pass is
// skipped, never reported: the bytes it no longer has are not damage.
func (l *Log) Scrub(ctx context.Context, pace func(ctx context.Context, n int) error) (ScrubResult, error) {
	var res ScrubResult
	l.mu.Lock()
	if l.damaged != nil {
		err := l.damaged
		l.mu.Unlock()
		return res, err
	}
	var sealed []*segment
	for _, s := range l.segs {
		if s.sealed {
			sealed = append(sealed, s)
		}
	}
	l.mu.Unlock()
	for _, seg := range sealed {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n, err := l.scrubSegment(ctx, seg, pace)
		res.Bytes += n
		if err != nil {
			return res, err
		}
		res.Segments++
	}
	return res, nil
}

// scrubSegment checks one sealed segment's frames.
func (l *Log) scrubSegment(ctx context.Context, seg *segment, pace func(context.Context, int) error) (int64, error) {
	l.mu.Lock()
	end := seg.size
	l.mu.Unlock()
	f, err := seg.reader()
	if err != nil {
		return 0, nil // deleted by retention meanwhile
	}
	// Without retain the reader reuses one buffer: the payloads are only
	// checked, never kept.
	r := frameReader{f: f, pos: segmentHeaderSize, end: end}
	paced := int64(segmentHeaderSize)
	if err := pace(ctx, segmentHeaderSize); err != nil {
		return 0, err
	}
	for {
		// Pace in the reader's chunks: a frame larger than a chunk is
		// paced by its size when the reader reaches it.
		for r.pos+readChunk > paced && paced < end {
			n := min(int64(readChunk), end-paced)
			if err := pace(ctx, int(n)); err != nil {
				return r.pos, err
			}
			paced += n
		}
		at := r.pos
		_, _, err := r.next()
		switch {
		case errors.Is(err, io.EOF):
			return end, nil
		case err == nil:
			continue
		case !isFrameError(err):
			return at, nil // an I/O error on a deleted or closed file: not ours to judge
		}
		if !l.stillSealed(seg, end) {
			return at, nil
		}
		return at, l.markCorrupt(f.Name(), at, fmt.Errorf("scrub: %w", err))
	}
}

// stillSealed reports whether seg is still in the log, sealed, with the
// size a scrub started from (a truncation changes it, retention removes
// the segment).
func (l *Log) stillSealed(seg *segment, size int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seg.size != size || !seg.sealed || l.closed {
		return false
	}
	for _, s := range l.segs {
		if s == seg {
			return true
		}
	}
	return false
}
