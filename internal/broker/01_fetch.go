package broker

// Fetch (key 1), versions 0–17.
//
// Reads committed record batches (up to the high watermark; the last stable
// offset equals it until transactions land) as they are stored, the first
// one whole even when larger than the limits (KIP-74). Long poll: the
// response waits until min_bytes are available, the max wait passes, or a
// partition errors; it wakes on high-watermark changes. Per-partition and
// per-response byte limits are honoured. Out-of-range offsets get
// OFFSET_OUT_OF_RANGE with the log start offset, so the consumer's reset
// policy applies. current_leader_epoch (v9+) is checked (FENCED_LEADER_EPOCH
// / UNKNOWN_LEADER_EPOCH). Topic ids replace names from v13.
// Fetch sessions (KIP-227) are refused the way Kafka refuses them when its
// cache is full: a new session request gets session id 0 and clients fall
// back to full fetches; an incremental request for a session we never gave
// gets FETCH_SESSION_ID_NOT_FOUND. Follower fetching (replica ids) is not
// served: replication is Raft's. Versions 0–3 (Kafka 3.9 serves them; 4.0
// dropped them, KIP-896) predate v2 batches: what is read is converted
// down to message format v0 (Fetch v0–1) or v1 (v2–3) as Kafka does
// (records.DownConvert); zstd batches cannot be expressed there and get
// UNSUPPORTED_COMPRESSION_TYPE; a topic with
// message.downconversion.enable=false answers them UNSUPPORTED_VERSION.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/protocol"
	"github.com/chronik-go/chronik/internal/quota"
	"github.com/chronik-go/chronik/internal/records"
)

func (b *Broker) handleFetch(ctx context.Context, c *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.FetchRequest)
	client := clientID(h)
	return result{wait: func() kmsg.Response {
		if b.quotas.Active(quota.Fetch) {
			// As Kafka: a response never carries more than the quota lets
			// the client read in one window.
			if w, ok := b.quotas.MaxInWindow(&c.quota, quota.Fetch, c.principal, client, time.Now()); ok && float64(req.MaxBytes) > w {
				req.MaxBytes = int32(max(w, 1))
				req.MinBytes = min(req.MinBytes, req.MaxBytes)
			}
		}
		resp := b.fetch(ctx, h.Version, req)
		if fr, ok := resp.(*kmsg.FetchResponse); ok && b.quotas.Active(quota.Fetch) {
			b.chargeFetch(c, client, fr)
		}
		return resp
	}}
}

// chargeFetch charges a fetch response's record bytes to the consumer byte
// rate. Over the quota, the response goes out empty with the throttle time
// and its bytes are not charged (Kafka's way: the consumer fetches the
// same offsets again once the throttle has passed).
func (b *Broker) chargeFetch(c *conn, client string, fr *kmsg.FetchResponse) {
	n := 0
	for _, t := range fr.Topics {
		for _, p := range t.Partitions {
			n += len(p.RecordBatches)
		}
	}
	now := time.Now()
	d := b.quotas.Record(&c.quota, quota.Fetch, c.principal, client, now, float64(n))
	if d <= 0 {
		return
	}
	b.quotas.Unrecord(&c.quota, quota.Fetch, now, float64(n))
	fr.Topics = nil
	fr.ThrottleMillis = int32(min(d.Milliseconds(), 1<<31-1))
	c.throttle(d)
}

func (b *Broker) fetch(ctx context.Context, version int16, req *kmsg.FetchRequest) kmsg.Response {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(version)
	if req.SessionID != 0 {
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp
	}
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 1
	}
	for {
		resp.Topics = resp.Topics[:0]
		total, failed := 0, false
		var waits []<-chan struct{}
		for _, rt := range req.Topics {
			name := rt.Topic
			var topicErr *kerr.Error
			if version >= 13 {
				if t, ok := b.topicByID(rt.TopicID); ok {
					name = t.Name
				} else {
					topicErr = kerr.UnknownTopicID
				}
			}
			ot := kmsg.FetchResponseTopic{Topic: rt.Topic, TopicID: rt.TopicID}
			for _, rp := range rt.Partitions {
				// An empty record set is sent as zero bytes, never as null:
				// librdkafka rejects a null record set.
				op := kmsg.FetchResponseTopicPartition{Partition: rp.Partition, HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1,
					PreferredReadReplica: -1, RecordBatches: []byte{}}
				err := error(topicErr)
				if topicErr == nil {
					var p *partition.Partition
					if p, err = b.localReader(name, rp.Partition); err == nil {
						err = checkEpoch(p, rp.CurrentLeaderEpoch)
					}
					if err == nil {
						waits = append(waits, p.Group.HighWatermarkChanged())
						limit := min(int(rp.PartitionMaxBytes), maxBytes-total)
						var rr partition.ReadResult
						rr, err = p.Read(rp.FetchOffset, limit, total == 0)
						op.HighWatermark, op.LastStableOffset, op.LogStartOffset = rr.HighWatermark, rr.LastStable, rr.LogStartOffset
						if version < 4 && p.Config().NoDownConversion {
							rr.Records, err = nil, fmt.Errorf("%w: message.downconversion.enable is false", kerr.UnsupportedVersion)
						}
						if rr.Records != nil && version < 4 {
							rr.Records, err = downConvert(rr.Records, version)
						}
						if rr.Records != nil {
							op.RecordBatches = rr.Records
						}
						total += len(rr.Records)
					}
				}
				if err != nil {
					op.ErrorCode = codeOf(err)
					failed = true
					if version >= 12 && (errors.Is(err, kerr.NotLeaderForPartition) || errors.Is(err, kerr.FencedLeaderEpoch)) {
						b.fetchCurrentLeader(resp, &op, name, version)
					}
				}
				ot.Partitions = append(ot.Partitions, op)
			}
			resp.Topics = append(resp.Topics, ot)
		}
		if failed || total >= int(req.MinBytes) || !time.Now().Before(deadline) || len(waits) == 0 {
			return resp
		}
		if !waitAny(ctx, waits, deadline) {
			// Context ended: answer with what there is.
			return resp
		}
	}
}

// downConvert converts stored v2 batches for a fetcher older than Fetch v4:
// message format v0 for Fetch v0–1, v1 for v2–3.
func downConvert(b []byte, version int16) ([]byte, error) {
	magic := int8(1)
	if version < 2 {
		magic = 0
	}
	out, err := records.DownConvert(make([]byte, 0, len(b)+len(b)/8), b, magic)
	switch {
	case errors.Is(err, records.ErrCodec):
		return nil, fmt.Errorf("%w: %w", kerr.UnsupportedCompressionType, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", kerr.KafkaStorageError, err)
	}
	return out, nil
}

// waitAny waits until one of chans is closed or the deadline passes; false
// means ctx ended.
func waitAny(ctx context.Context, chans []<-chan struct{}, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	cases := make([]reflect.SelectCase, 0, len(chans)+2)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.C)})
	for _, c := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	i, _, _ := reflect.Select(cases)
	return i != 0
}

// checkEpoch compares a client's current leader epoch with the partition's.
func checkEpoch(p *partition.Partition, epoch int32) error {
	if epoch < 0 {
		return nil
	}
	cur := int32(p.Group.Status().Term)
	switch {
	case epoch < cur:
		return kerr.FencedLeaderEpoch
	case epoch > cur:
		return kerr.UnknownLeaderEpoch
	}
	return nil
}

// fetchCurrentLeader tells a consumer that asked the wrong node where the
// partition's leader is (KIP-951): the leader's id and epoch (Fetch v12+)
// and, from v16, its address among the response's node endpoints.
func (b *Broker) fetchCurrentLeader(resp *kmsg.FetchResponse, op *kmsg.FetchResponseTopicPartition, topic string, version int16) {
	leader, epoch := b.node.Leader(topic, op.Partition)
	if leader < 0 {
		return
	}
	op.CurrentLeader.LeaderID, op.CurrentLeader.LeaderEpoch = leader, epoch
	if version < 16 || slices.ContainsFunc(resp.Brokers, func(br kmsg.FetchResponseBroker) bool { return br.NodeID == leader }) {
		return
	}
	if br, ok := b.broker(leader); ok {
		ep := kmsg.NewFetchResponseBroker()
		ep.NodeID, ep.Host, ep.Port, ep.Rack = br.ID, br.Host, br.Port, rackOf(br)
		resp.Brokers = append(resp.Brokers, ep)
	}
}
