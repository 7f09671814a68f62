package broker

// ListOffsets (key 2), versions 0–10.
//
// Earliest (-2) is the log start offset (DeleteRecords and retention aware),
// latest (-1) the high watermark, max timestamp (-3, v7+) the first record
// with the largest timestamp, earliest-local (-4) equals earliest (no
// tiering), latest-tiered (-5) has no offset. A timestamp finds the first
// record at or after it through the time index and, inside its batch, the
// record itself (decompressing when needed). current_leader_epoch (v4+) is
// checked. Before answering latest, a leader confirms with a quorum that it
// still leads (raftlog.Group.ConfirmLeader), so a deposed leader that has
// not heard of its successor never answers an end offset below one the
// successor acknowledged.
//
// v0 (Kafka 3.9 serves it; 4.0 dropped it, KIP-896; Burrow and other old
// tools use it) answers a list of at most max_num_offsets offsets, largest
// first, from Kafka's view of a log as segment start offsets followed by
// its end: Chronik reports its log as one segment, so latest (-1) is [high
// watermark, log start], earliest (-2) [log start], and a timestamp the
// offsets of "segments" last written before it: [log start] when a record
// older than it exists, none otherwise ([high watermark, log start] when
// the timestamp is now or later). Segment boundaries are not listed.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/protocol"
	"github.com/chronik-go/chronik/internal/raftlog"
)

func (b *Broker) handleListOffsets(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.ListOffsetsRequest)
	resp := kmsg.NewPtrListOffsetsResponse()
	resp.SetVersion(h.Version)
	for _, rt := range req.Topics {
		ot := kmsg.ListOffsetsResponseTopic{Topic: rt.Topic}
		for _, rp := range rt.Partitions {
			op := kmsg.ListOffsetsResponseTopicPartition{Partition: rp.Partition, Offset: -1, Timestamp: -1, LeaderEpoch: -1}
			p, err := b.localReader(rt.Topic, rp.Partition)
			if err == nil {
				err = checkEpoch(p, rp.CurrentLeaderEpoch)
			}
			if err == nil && rp.Timestamp == -3 && h.Version < 7 {
				err = kerr.UnsupportedVersion
			}
			if err == nil && rp.Timestamp == -1 {
				err = confirmLeader(ctx, p)
			}
			if err == nil && h.Version == 0 {
				op.OldStyleOffsets, err = oldStyleOffsets(p, rp.Timestamp, rp.MaxNumOffsets)
				op.Offset, op.Timestamp, op.LeaderEpoch = -1, -1, -1
			} else if err == nil {
				op.Offset, op.Timestamp, err = p.ListOffset(rp.Timestamp)
				op.LeaderEpoch = int32(p.Group.Status().Term)
			}
			if err != nil {
				op.ErrorCode = codeOf(err)
				op.Offset, op.Timestamp, op.LeaderEpoch, op.OldStyleOffsets = -1, -1, -1, nil
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return result{resp: resp}
}

// confirmLeaderTimeout bounds the wait for a quorum's confirmation; a
// deposed leader steps down well within it (CheckQuorum).
const confirmLeaderTimeout = 5 * time.Second

// confirmLeader confirms p's leadership with a quorum before a read of its
// high watermark that must not be stale.
func confirmLeader(ctx context.Context, p *partition.Partition) error {
	cctx, cancel := context.WithTimeout(ctx, confirmLeaderTimeout)
	defer cancel()
	switch err := p.Group.ConfirmLeader(cctx); {
	case err == nil:
		return nil
	case errors.Is(err, raftlog.ErrNotLeader), errors.Is(err, raftlog.ErrStopped):
		return kerr.NotLeaderForPartition
	default:
		return kerr.RequestTimedOut
	}
}

// oldStyleOffsets answers ListOffsets v0 for one partition (see above).
func oldStyleOffsets(p *partition.Partition, ts int64, maxNum int32) ([]int64, error) {
	if maxNum < 0 {
		return nil, fmt.Errorf("%w: max_num_offsets %d", kerr.InvalidRequest, maxNum)
	}
	start := p.Log.LogStartOffset()
	end := p.Group.HighWatermark()
	var offs []int64
	switch {
	case ts == partition.LatestTimestamp || ts >= time.Now().UnixMilli():
		offs = []int64{end, start}
	case ts == partition.EarliestTimestamp:
		offs = []int64{start}
	case ts < 0:
		return nil, fmt.Errorf("%w: timestamp %d", kerr.InvalidRequest, ts)
	default:
		// A record older than ts exists when the first record at or after
		// ts is not the first record of the log.
		first, _, err := p.ListOffset(ts)
		if err != nil {
			return nil, err
		}
		if end > start && first != start {
			offs = []int64{start}
		}
	}
	offs = slices.Compact(offs)
	return offs[:min(len(offs), int(maxNum))], nil
}
