package broker

// DeleteRecords (key 21), versions 0–2.
//
// Moves a partition's log start offset through its Raft group (so every
// replica applies it) and answers with the new low watermark. Offset -1
// means the high watermark; an offset beyond it is OFFSET_OUT_OF_RANGE.
// Reads and ListOffsets(earliest) honour the new start at once; whole
// segments below it are deleted.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleDeleteRecords(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.DeleteRecordsRequest)
	resp := kmsg.NewPtrDeleteRecordsResponse()
	resp.SetVersion(h.Version)
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	for _, rt := range req.Topics {
		ot := kmsg.DeleteRecordsResponseTopic{Topic: rt.Topic}
		for _, rp := range rt.Partitions {
			op := kmsg.DeleteRecordsResponseTopicPartition{Partition: rp.Partition, LowWatermark: -1}
			p, err := b.localReader(rt.Topic, rp.Partition)
			if err == nil {
				op.LowWatermark, err = p.DeleteRecords(ctx, rp.Offset)
			}
			if err != nil {
				op.ErrorCode, op.LowWatermark = codeOf(err), -1
			}
			ot.Partitions = append(ot.Partitions, op)
		}
		resp.Topics = append(resp.Topics, ot)
	}
	return result{resp: resp}
}
