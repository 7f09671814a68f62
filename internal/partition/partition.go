// Package partition gives one local replica of a topic partition its Kafka
// semantics on top of a Raft group and its log: produce validation and
// offset assignment, idempotent-producer sequences, reads for fetch, offset
// lookups, DeleteRecords. It never decodes requests (internal/broker does)
// and never re-encodes a producer's records.
package partition

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/raftlog"
	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/storage"
)

// Entry kinds of a data partition's log (first byte of an entry's data).
const (
	entryBatches       = records.EntryBatches
	entryDeleteRecords = byte(0x01)
)

// Config is the live topic configuration a partition enforces.
type Config struct {
	// MaxMessageBytes is max.message.bytes: the largest batch accepted.
	MaxMessageBytes int
	// LogAppendTime makes the broker stamp batches
	// (message.timestamp.type=LogAppendTime).
	LogAppendTime bool
	// ProducerExpiry is producer.id.expiration.ms.
	ProducerExpiry time.Duration
	// MinInsyncReplicas is min.insync.replicas: an acks=all produce is
	// refused with NOT_ENOUGH_REPLICAS before it is appended while fewer
	// replicas are in sync.
	MinInsyncReplicas int
	// Recompress stores every batch in Codec (compression.type other than
	// producer): a batch that arrives in another codec is recompressed.
	Recompress bool
	Codec      int8
	// TimestampBounds refuses CreateTime records whose timestamp is more
	// than TimestampBeforeMs behind or TimestampAfterMs ahead of the
	// broker's clock (message.timestamp.before/after.max.ms) with
	// INVALID_TIMESTAMP; math.MaxInt64 leaves a side open.
	TimestampBounds                     bool
	TimestampBeforeMs, TimestampAfterMs int64
	// NoDownConversion is message.downconversion.enable=false: fetchers
	// older than Fetch v4 are refused.
	NoDownConversion bool
}

// DefaultConfig is Kafka's defaults.
func DefaultConfig() Config {
	return Config{MaxMessageBytes: 1048588, ProducerExpiry: 24 * time.Hour, MinInsyncReplicas: 1}
}

// Partition is one local replica.
type Partition struct {
	Topic   string
	Index   int32
	TopicID [16]byte
	Group   *raftlog.Group
	Log     *storage.Log

	cfg atomic.Pointer[Config]
	log *slog.Logger
	now func() time.Time

	// live is the producer state Assign checks against (leader): applied
	// plus everything appended after it. applied covers committed entries
	// only and is what snapshots hold. Both are owned by the group's
	// goroutine.
	live, applied *Producers
	lastSnapshot  time.Time
	snapEnd       int64
}

// Options build a partition.
type Options struct {
	Topic   string
	Index   int32
	TopicID [16]byte
	Log     *storage.Log
	Config  Config
	Logger  *slog.Logger
	Now     func() time.Time
}

// New prepares a partition over an open log and rebuilds its producer state
// (snapshot plus the log after it). The caller creates the Raft group with
// SM = the partition and OnLeader = p.OnLeader, and sets p.Group.
func New(o Options) (*Partition, error) {
	p := &Partition{Topic: o.Topic, Index: o.Index, TopicID: o.TopicID, Log: o.Log, log: o.Logger, now: o.Now}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	cfg := o.Config
	p.cfg.Store(&cfg)
	if err := p.recoverProducers(); err != nil {
		return nil, err
	}
	// A snapshot for a follower behind the log start carries the applied
	// producer state (Raft's goroutine calls this, as it calls Apply).
	p.Log.SetSnapshotData(func() ([]byte, error) { return encodeSnapshot(p.snapEndFor(), p.applied), nil })
	return p, nil
}

// snapEndFor is the end offset the applied producer state covers.
func (p *Partition) snapEndFor() int64 {
	if p.Group != nil {
		return p.Group.HighWatermark()
	}
	return p.Log.EndOffset()
}

// Restore takes over the leader's producer state from a snapshot that
// replaced this replica's log (raftlog.Restorer). The state may cover
// entries after the snapshot; applying them again is harmless.
func (p *Partition) Restore(_ uint64, extra []byte) error {
	prods := newProducers()
	if len(extra) > 0 {
		var err error
		if _, prods, err = decodeSnapshot(extra); err != nil {
			return fmt.Errorf("partition %s: snapshot: %w", p.name(), err)
		}
	}
	p.applied = prods
	p.live = prods.clone()
	p.snapEnd = 0
	return p.snapshot(p.Log.EndOffset())
}

// SetConfig replaces the live configuration.
func (p *Partition) SetConfig(c Config) { p.cfg.Store(&c) }

// Config returns the live configuration.
func (p *Partition) Config() Config { return *p.cfg.Load() }

// recoverProducers loads the snapshot and replays committed entries after
// it, up to the applied index.
func (p *Partition) recoverProducers() error {
	p.applied = newProducers()
	from := p.Log.LogStartOffset()
	b, err := os.ReadFile(filepath.Join(p.Log.Dir(), snapshotFile))
	switch {
	case err == nil:
		end, prods, derr := decodeSnapshot(b)
		if derr == nil && end <= p.Log.EndOffset() {
			p.applied, from = prods, max(end, from)
		} else {
			p.log.Warn("ignoring producer snapshot; rebuilding from the log", "partition", p.name(), "err", derr)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("read producer snapshot: %w", err)
	}
	appliedEnd, err := p.Log.EndOffsetAt(p.Log.Applied())
	if err != nil {
		return err
	}
	if err := p.scan(p.applied, from, appliedEnd); err != nil {
		return fmt.Errorf("rebuild producer state: %w", err)
	}
	p.snapEnd = appliedEnd
	p.live = p.applied.clone()
	return nil
}

// scan applies the batches in [from, to) to prods.
func (p *Partition) scan(prods *Producers, from, to int64) error {
	for off := from; off < to; {
		bs, err := p.Log.ReadRecords(off, 4<<20, to)
		if err != nil {
			return err
		}
		if len(bs) == 0 {
			return nil
		}
		for _, b := range bs {
			applyBatches(prods, b.Data)
			off = b.EndOffset
		}
	}
	return nil
}

// applyBatches records the batches of an entry's data in prods.
func applyBatches(prods *Producers, data []byte) {
	if len(data) == 0 || data[0] != entryBatches {
		return
	}
	for b := data[1:]; len(b) > 0; {
		h, err := records.ReadHeader(b)
		if err != nil {
			return
		}
		prods.Update(&h, h.BaseOffset)
		b = b[h.Size():]
	}
}

func (p *Partition) name() string { return fmt.Sprintf("%s-%d", p.Topic, p.Index) }

// OnLeader rebuilds the live producer state from the applied state and the
// log after it, before the new leader takes proposals.
func (p *Partition) OnLeader(uint64) error {
	p.Log.WaitIdle()
	live := p.applied.clone()
	if err := p.scan(live, p.Group.HighWatermark(), p.Log.EndOffset()); err != nil {
		return err
	}
	p.live = live
	return nil
}

// Apply applies committed entries: producer state, DeleteRecords, and a
// snapshot of the producer state every 30 s (raftlog.StateMachine).
func (p *Partition) Apply(ents []*pb.Entry) error {
	for _, e := range ents {
		if len(e.Data) == 0 {
			continue
		}
		switch e.Data[0] {
		case entryBatches:
			applyBatches(p.applied, e.Data)
		case entryDeleteRecords:
			if len(e.Data) != 9 {
				return fmt.Errorf("partition %s: bad delete-records entry", p.name())
			}
			off := int64(binary.BigEndian.Uint64(e.Data[1:]))
			if err := p.Log.AdvanceLogStart(context.Background(), off); err != nil && !errors.Is(err, storage.ErrOffsetOutOfRange) {
				return err
			}
		}
	}
	if p.now().Sub(p.lastSnapshot) >= 30*time.Second {
		return p.snapshot(p.Group.HighWatermark())
	}
	return nil
}

// snapshot writes the applied producer state, which covers offsets below
// end. It expires idle producers first.
func (p *Partition) snapshot(end int64) error {
	p.applied.Expire(p.now().Add(-p.Config().ProducerExpiry).UnixMilli())
	p.lastSnapshot = p.now()
	if end <= p.snapEnd && p.snapEnd > 0 {
		return nil
	}
	if err := storage.WriteFileAtomic(p.Log.Dir(), snapshotFile, encodeSnapshot(end, p.applied)); err != nil {
		return fmt.Errorf("partition %s: producer snapshot: %w", p.name(), err)
	}
	p.snapEnd = end
	return nil
}

// Close writes a final producer snapshot. Call it after the group stopped.
func (p *Partition) Close() error {
	if p.Log.Damaged() != nil {
		return nil
	}
	hw := p.Log.EndOffset()
	if st := p.Group; st != nil {
		hw = st.HighWatermark()
	}
	return p.snapshot(hw)
}

// ProduceResult is the outcome of one partition's produce.
type ProduceResult struct {
	BaseOffset     int64
	LogAppendTime  int64
	LogStartOffset int64
	Err            error // a *kerr.Error
}

// Produce validates one record batch (a produce request carries exactly one
// per partition since v3) and proposes it. entry holds one spare byte and
// then the batch: the partition puts the entry kind there, so the request's
// bytes become the log entry without a copy. Produce must be called in the
// order requests arrived on their connection; the returned wait blocks
// until the outcome is known (durable on the leader for acks=1, committed
// for acks=all) or ctx ends.
func (p *Partition) Produce(ctx context.Context, entry []byte, acks int16) func(context.Context) ProduceResult {
	batch := entry[1:]
	h, err := p.validate(batch)
	if err != nil {
		return done(ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: err})
	}
	if acks == -1 {
		if st := p.Group.Status(); st.IsLeader && len(st.ISR) < p.Config().MinInsyncReplicas {
			return done(ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: kerr.NotEnoughReplicas})
		}
	}
	cfg := p.Config()
	if cfg.TimestampBounds && !cfg.LogAppendTime {
		if err := checkTimestamps(batch, &h, p.now().UnixMilli(), &cfg); err != nil {
			return done(ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: err})
		}
	}
	if cfg.Recompress && h.Compression() != cfg.Codec {
		if entry, h, err = recompress(batch, &cfg); err != nil {
			return done(ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: err})
		}
	}
	data := entry
	data[0] = entryBatches
	appendTime := int64(-1)
	if cfg.LogAppendTime {
		appendTime = p.now().UnixMilli()
		records.SetLogAppendTime(data[1:], appendTime)
		h.MaxTimestamp = appendTime
	}
	count := int64(h.LastOffsetDelta) + 1
	prop := raftlog.NewProposal(data, func(base int64, term uint64) raftlog.Assignment {
		c := p.live.Check(&h)
		switch {
		case c.err != nil:
			return raftlog.Assignment{Err: c.err}
		case c.dup:
			return raftlog.Assignment{Skip: true, BaseOffset: c.dupBase}
		}
		records.Patch(data[1:], base, int32(term))
		return raftlog.Assignment{Count: count, Undo: p.live.Update(&h, base)}
	}, acks == 1)
	if acks == -1 {
		prop.MinCopies = p.Config().MinInsyncReplicas
	}
	if err := p.Group.Propose(ctx, prop); err != nil {
		return done(ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: mapErr(err)})
	}
	return func(ctx context.Context) ProduceResult {
		select {
		case <-prop.Done():
		case <-ctx.Done():
			return ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: kerr.RequestTimedOut}
		}
		r := prop.Result()
		if r.Err != nil {
			return ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: mapErr(r.Err)}
		}
		if r.Skipped {
			// A duplicate: answer with the original offset once that batch
			// is as safe as a new one would be.
			if err := p.waitHW(ctx, r.BaseOffset+count); err != nil {
				return ProduceResult{BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1, Err: err}
			}
		}
		return ProduceResult{BaseOffset: r.BaseOffset, LogAppendTime: appendTime, LogStartOffset: p.Log.LogStartOffset()}
	}
}

func done(r ProduceResult) func(context.Context) ProduceResult {
	return func(context.Context) ProduceResult { return r }
}

// recompress re-encodes a batch in the topic's codec (compression.type):
// a new entry (spare kind byte, then the batch) and its header.
func recompress(batch []byte, cfg *Config) ([]byte, records.Header, error) {
	nb, err := records.Recompress(batch, cfg.Codec)
	if err != nil {
		return nil, records.Header{}, fmt.Errorf("%w: %w", kerr.CorruptMessage, err)
	}
	if len(nb) > cfg.MaxMessageBytes {
		return nil, records.Header{}, fmt.Errorf("%w: batch of %d bytes in the topic's codec, max.message.bytes is %d", kerr.MessageTooLarge, len(nb), cfg.MaxMessageBytes)
	}
	entry := make([]byte, 1+len(nb))
	copy(entry[1:], nb)
	h, err := records.ReadHeader(entry[1:])
	return entry, h, err
}

// checkTimestamps refuses a batch with a CreateTime record outside the
// topic's bounds around now, as Kafka's log validator does. Records
// without a timestamp (-1, from message format v0) are not checked.
func checkTimestamps(batch []byte, h *records.Header, now int64, cfg *Config) error {
	late := func(ts int64) bool {
		return cfg.TimestampAfterMs != math.MaxInt64 && ts > now && ts-now > cfg.TimestampAfterMs
	}
	if cfg.TimestampBeforeMs == math.MaxInt64 && !late(h.MaxTimestamp) {
		return nil // MaxTimestamp is the largest: no record is too far ahead
	}
	var bad error
	err := records.RecordTimes(batch, func(off, ts int64) bool {
		early := cfg.TimestampBeforeMs != math.MaxInt64 && ts >= 0 && ts < now && now-ts > cfg.TimestampBeforeMs
		if early || late(ts) {
			bad = fmt.Errorf("%w: timestamp %d of the record at offset delta %d is out of range: the broker's clock is %d, message.timestamp.before.max.ms %d, message.timestamp.after.max.ms %d",
				kerr.InvalidTimestamp, ts, off-h.BaseOffset, now, cfg.TimestampBeforeMs, cfg.TimestampAfterMs)
			return false
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("%w: %w", kerr.CorruptMessage, err)
	}
	return bad
}

// validate checks a batch the way Kafka's broker does before appending it,
// without decompressing it.
func (p *Partition) validate(batch []byte) (records.Header, error) {
	h, err := records.ReadHeader(batch)
	switch {
	case errors.Is(err, records.ErrMagic):
		return h, fmt.Errorf("%w: %w", kerr.InvalidRecord, err)
	case err != nil:
		return h, fmt.Errorf("%w: %w", kerr.CorruptMessage, err)
	case h.Size() != len(batch):
		return h, fmt.Errorf("%w: a produce request must hold exactly one record batch per partition", kerr.InvalidRecord)
	case len(batch) > p.Config().MaxMessageBytes:
		return h, fmt.Errorf("%w: batch of %d bytes, max.message.bytes is %d", kerr.MessageTooLarge, len(batch), p.Config().MaxMessageBytes)
	}
	if err := records.CheckCRC(batch, &h); err != nil {
		return h, fmt.Errorf("%w: %w", kerr.CorruptMessage, err)
	}
	switch {
	case h.NumRecords <= 0 || h.NumRecords != h.LastOffsetDelta+1:
		return h, fmt.Errorf("%w: %d records with last offset delta %d", kerr.InvalidRecord, h.NumRecords, h.LastOffsetDelta)
	case h.IsControl():
		return h, fmt.Errorf("%w: clients cannot produce control batches", kerr.InvalidRecord)
	case h.IsTransactional():
		return h, fmt.Errorf("%w: transactional produce without a transaction", kerr.InvalidTxnState)
	}
	return h, nil
}

// waitHW waits until the high watermark reaches off.
func (p *Partition) waitHW(ctx context.Context, off int64) error {
	for {
		ch := p.Group.HighWatermarkChanged()
		if p.Group.HighWatermark() >= off {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return kerr.RequestTimedOut
		case <-p.Group.Stopped():
			return kerr.NotLeaderForPartition
		}
	}
}

// mapErr turns driver and storage errors into Kafka errors.
func mapErr(err error) error {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return ke
	case errors.Is(err, raftlog.ErrNotLeader), errors.Is(err, raftlog.ErrStopped):
		return kerr.NotLeaderForPartition
	case errors.Is(err, raftlog.ErrTooFewCopies):
		return kerr.NotEnoughReplicasAfterAppend
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return kerr.RequestTimedOut
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange
	default:
		return kerr.KafkaStorageError
	}
}

// ReadResult is what a fetch gets from one partition.
type ReadResult struct {
	Records        []byte
	HighWatermark  int64
	LastStable     int64
	LogStartOffset int64
}

// Read returns the record batches from offset, up to maxBytes (but at least
// one batch when minOne), never beyond the high watermark.
func (p *Partition) Read(offset int64, maxBytes int, minOne bool) (ReadResult, error) {
	hw := p.Group.HighWatermark()
	r := ReadResult{HighWatermark: hw, LastStable: hw, LogStartOffset: p.Log.LogStartOffset()}
	if offset < r.LogStartOffset || offset > p.Log.EndOffset() {
		return r, kerr.OffsetOutOfRange
	}
	if offset >= hw || (maxBytes <= 0 && !minOne) {
		return r, nil
	}
	limit := maxBytes
	if !minOne {
		limit = max(limit, 1)
	}
	bs, err := p.Log.ReadRecords(offset, limit, hw)
	if err != nil {
		return r, mapErr(err)
	}
	n := 0
	for i, b := range bs {
		if !minOne && n+len(b.Data)-1 > maxBytes {
			bs = bs[:i]
			break
		}
		n += len(b.Data) - 1
	}
	r.Records = make([]byte, 0, n)
	for _, b := range bs {
		r.Records = append(r.Records, b.Data[1:]...)
	}
	return r, nil
}

// Special timestamps of ListOffsets.
const (
	LatestTimestamp   = -1
	EarliestTimestamp = -2
	MaxTimestamp      = -3
	EarliestLocal     = -4
	LatestTiered      = -5
)

// ListOffset answers ListOffsets for one partition: the offset and
// timestamp for a special timestamp or the first record at or after ts.
// Offset -1 means no such record.
func (p *Partition) ListOffset(ts int64) (offset, timestamp int64, err error) {
	switch ts {
	case LatestTimestamp:
		return p.Group.HighWatermark(), -1, nil
	case EarliestTimestamp, EarliestLocal:
		return p.Log.LogStartOffset(), -1, nil
	case LatestTiered:
		return -1, -1, nil
	case MaxTimestamp:
		return p.maxTimestamp()
	}
	if ts < 0 {
		return -1, -1, fmt.Errorf("%w: timestamp %d", kerr.InvalidRequest, ts)
	}
	b, ok, err := p.Log.OffsetForTimestamp(ts)
	if err != nil {
		return -1, -1, mapErr(err)
	}
	if !ok || b.BaseOffset >= p.Group.HighWatermark() {
		return -1, -1, nil
	}
	off, rts, err := records.FirstAtOrAfter(b.Data[1:], ts)
	if err != nil {
		return -1, -1, fmt.Errorf("%w: %w", kerr.KafkaStorageError, err)
	}
	return max(off, p.Log.LogStartOffset()), rts, nil
}

// maxTimestamp finds the record with the largest timestamp below the high
// watermark (the first such record when several share it).
func (p *Partition) maxTimestamp() (int64, int64, error) {
	hw := p.Group.HighWatermark()
	start := p.Log.LogStartOffset()
	if start >= hw {
		return -1, -1, nil
	}
	var best storage.Batch
	found := false
	for off := start; off < hw; {
		bs, err := p.Log.ReadRecords(off, 4<<20, hw)
		if err != nil {
			return -1, -1, mapErr(err)
		}
		if len(bs) == 0 {
			break
		}
		for _, b := range bs {
			if !found || b.MaxTimestamp > best.MaxTimestamp {
				best, found = b, true
			}
			off = b.EndOffset
		}
	}
	if !found {
		return -1, -1, nil
	}
	off, ts, err := records.FirstAtOrAfter(best.Data[1:], best.MaxTimestamp)
	if err != nil {
		return -1, -1, fmt.Errorf("%w: %w", kerr.KafkaStorageError, err)
	}
	return off, ts, nil
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch not
// above epoch that has entries, and the offset where it ends.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64, error) {
	first, _ := p.Log.FirstIndex()
	last, _ := p.Log.LastIndex()
	if last < first {
		return -1, -1, nil
	}
	// Terms do not decrease along the log: find the first entry of a
	// larger term.
	var serr error
	n := int(last - first + 1)
	i := sort.Search(n, func(k int) bool {
		t, err := p.Log.Term(first + uint64(k))
		if err != nil && serr == nil {
			serr = err
		}
		return int64(t) > int64(epoch)
	})
	if serr != nil {
		return -1, -1, mapErr(serr)
	}
	if i == 0 {
		// Every retained entry is of a larger epoch.
		return -1, -1, nil
	}
	idx := first + uint64(i) - 1
	t, err := p.Log.Term(idx)
	if err != nil {
		return -1, -1, mapErr(err)
	}
	if i == n {
		return int32(t), p.Log.EndOffset(), nil
	}
	end, err := p.Log.EndOffsetAt(idx)
	if err != nil {
		return -1, -1, mapErr(err)
	}
	return int32(t), end, nil
}

// DeleteRecords moves the log start offset to before (-1: the high
// watermark) through Raft, so every replica applies it, and returns the new
// low watermark.
func (p *Partition) DeleteRecords(ctx context.Context, before int64) (int64, error) {
	hw := p.Group.HighWatermark()
	if before == -1 {
		before = hw
	}
	if before < 0 || before > hw {
		return -1, fmt.Errorf("%w: %d is beyond the high watermark %d", kerr.OffsetOutOfRange, before, hw)
	}
	if before <= p.Log.LogStartOffset() {
		return p.Log.LogStartOffset(), nil
	}
	data := make([]byte, 9)
	data[0] = entryDeleteRecords
	binary.BigEndian.PutUint64(data[1:], uint64(before))
	if _, err := p.Group.ProposeWait(ctx, raftlog.NewProposal(data, nil, false)); err != nil {
		return -1, mapErr(err)
	}
	return p.Log.LogStartOffset(), nil
}
