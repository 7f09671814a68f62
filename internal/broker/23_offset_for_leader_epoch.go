package broker

// OffsetForLeaderEpoch (key 23), versions 0–4.
//
// For a leader epoch (= Raft term), answers the largest epoch not above it
// that has entries and the offset where that epoch ends (the start of the
// next one, or the log end for the current epoch): what a consumer needs to
// detect log truncation after a leader change (KIP-320).
// current_leader_epoch (v2+) is checked; v0 answers without the epoch.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleOffsetForLeaderEpoch(_ context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.OffsetForLeaderEpochRequest)
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	resp.SetVersion(h.Version)
	for _, rt := range req.Topics {
		ot := kmsg.OffsetForLeaderEpochResponseTopic{Topic: rt.Topic}
		for _, rp := range rt.Partitions {
			op := kmsg.OffsetForLeaderEpochResponseTopicPartition{Partition: rp.Partition, LeaderEpoch: -1, EndOffset: -1}
			p, err := b.localReader(rt.Topic, rp.Partition)
			if err == nil {
				err = checkEpoch(p, rp.CurrentLeaderEpoch)
			}
			if err == nil {
				op.LeaderEpoch, op.EndOffset, err = p.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			if err != nil {
				op.ErrorCode, op.LeaderEpoch, op.EndOffset = codeOf(err), -1, -1
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return result{resp: resp}
}
