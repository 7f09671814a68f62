package partition

import (
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-go/chronik/internal/records"
)

// maxCachedBatches is how many recent batches per producer are remembered
// for duplicate detection (Kafka's producer may have up to 5 in flight).
const maxCachedBatches = 5

// batchMeta identifies one appended batch of an idempotent producer.
type batchMeta struct {
	firstSeq, lastSeq int32
	baseOffset        int64
	count             int32
}

// producerEntry is what a partition knows about one producer id.
type producerEntry struct {
	epoch   int16
	batches []batchMeta // oldest first, at most maxCachedBatches
	// lastTimestamp is the max timestamp of the last batch (for expiry).
	lastTimestamp int64
}

func (e *producerEntry) lastSeq() int32 { return e.batches[len(e.batches)-1].lastSeq }

// Producers is the idempotent-producer state of one partition: for each
// producer id, its epoch and its last batches. It is only touched on the
// partition group's goroutine (Assign) and during recovery, so it has no
// lock.
type Producers struct {
	m map[int64]*producerEntry
}

func newProducers() *Producers { return &Producers{m: map[int64]*producerEntry{}} }

// check is the outcome of checking a batch against the state.
type check struct {
	dup     bool
	dupBase int64
	err     error
}

// Check validates batch h of an idempotent producer, Kafka's way:
// a stale epoch is fenced, a new epoch must start at sequence 0, a batch
// equal to one of the last five is a duplicate answered with its original
// offset, any other batch must continue the last sequence.
func (p *Producers) Check(h *records.Header) check {
	if h.ProducerID < 0 {
		return check{}
	}
	if h.BaseSequence < 0 {
		return check{err: fmt.Errorf("%w: idempotent batch without a sequence", kerr.InvalidRecord)}
	}
	e := p.m[h.ProducerID]
	first := h.BaseSequence
	last := seqAdd(first, h.LastOffsetDelta)
	switch {
	case e == nil || len(e.batches) == 0:
		// An unknown producer (new, or forgotten after expiry or retention)
		// may start at any sequence, as in Kafka.
	case h.ProducerEpoch < e.epoch:
		return check{err: fmt.Errorf("%w: producer %d epoch %d is older than %d", kerr.InvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)}
	case h.ProducerEpoch > e.epoch:
		if first != 0 {
			return check{err: fmt.Errorf("%w: producer %d new epoch %d starts at sequence %d", kerr.OutOfOrderSequenceNumber, h.ProducerID, h.ProducerEpoch, first)}
		}
	default:
		for _, b := range e.batches {
			if b.firstSeq == first && b.lastSeq == last {
				return check{dup: true, dupBase: b.baseOffset}
			}
		}
		if want := seqAdd(e.lastSeq(), 1); first != want {
			return check{err: fmt.Errorf("%w: producer %d sent sequence %d, expected %d", kerr.OutOfOrderSequenceNumber, h.ProducerID, first, want)}
		}
	}
	return check{}
}

// Update records an appended batch (a batch already recorded is left
// alone, so replaying entries is harmless). It returns a function that
// undoes it.
func (p *Producers) Update(h *records.Header, baseOffset int64) func() {
	if h.ProducerID < 0 {
		return func() {}
	}
	old, had := p.m[h.ProducerID]
	if had && old.epoch == h.ProducerEpoch {
		for _, b := range old.batches {
			if b.baseOffset == baseOffset {
				return func() {}
			}
		}
	}
	var saved producerEntry
	if had {
		saved = *old
		saved.batches = append([]batchMeta(nil), old.batches...)
	}
	e := old
	if e == nil || h.ProducerEpoch != e.epoch {
		e = &producerEntry{epoch: h.ProducerEpoch}
		p.m[h.ProducerID] = e
	}
	e.batches = append(e.batches, batchMeta{firstSeq: h.BaseSequence, lastSeq: seqAdd(h.BaseSequence, h.LastOffsetDelta), baseOffset: baseOffset, count: h.LastOffsetDelta + 1})
	if len(e.batches) > maxCachedBatches {
		e.batches = append(e.batches[:0], e.batches[len(e.batches)-maxCachedBatches:]...)
	}
	e.lastTimestamp = h.MaxTimestamp
	return func() {
		if had {
			*old = saved
			p.m[h.ProducerID] = old
		} else {
			delete(p.m, h.ProducerID)
		}
	}
}

// clone returns a deep copy.
func (p *Producers) clone() *Producers {
	c := newProducers()
	for id, e := range p.m {
		ce := *e
		ce.batches = append([]batchMeta(nil), e.batches...)
		c.m[id] = &ce
	}
	return c
}

// Expire forgets producers whose last batch is older than cutoff (Kafka's
// producer.id.expiration.ms).
func (p *Producers) Expire(cutoffMs int64) {
	for id, e := range p.m {
		if e.lastTimestamp < cutoffMs {
			delete(p.m, id)
		}
	}
}

// Len returns the number of producers tracked.
func (p *Producers) Len() int { return len(p.m) }

// seqAdd adds to a sequence number with Kafka's wrap-around at MaxInt32.
func seqAdd(seq, n int32) int32 {
	if int64(seq)+int64(n) > math.MaxInt32 {
		return int32(int64(seq) + int64(n) - math.MaxInt32 - 1)
	}
	return seq + n
}
