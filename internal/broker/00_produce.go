package broker

// Produce (key 0), versions 0–13.
//
// Batches are validated (frame, CRC-32C, one batch per partition, size,
// record count, no client control batches) and stored as sent; only
// baseOffset and partitionLeaderEpoch are patched. The partitions of a
// request are proposed on the connection's reader goroutine, so produce
// requests of one connection are appended in order, while their waits for
// durability overlap in separate goroutines. acks=1 answers once the leader
// has the batch durably (per the WAL profile), acks=all once it is
// committed (bounded by the request timeout), acks=0 not at all — unless a
// partition failed, in which case the connection is closed, as Kafka does.
// Idempotent producers get Kafka's sequence and epoch errors, and a
// duplicate is answered with the offset of the original.
// Versions 0–2 (Kafka 3.9 serves them; 4.0 dropped them, KIP-896) may carry
// legacy message sets (magic 0/1): they are parsed, every message's CRC
// checked, and converted into one v2 batch in the set's codec, as Kafka's
// log validator does (records/legacy.go); a v2 batch in them is taken as
// is. From v3 only v2 batches are accepted (INVALID_RECORD otherwise).
// Deliberate gap: transactional batches are refused (INVALID_TXN_STATE)
// until transactions land.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/partition"
	"github.com/chronik-go/chronik/internal/protocol"
	"github.com/chronik-go/chronik/internal/quota"
	"github.com/chronik-go/chronik/internal/records"
)

func (b *Broker) handleProduce(ctx context.Context, c *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.ProduceRequest)
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(h.Version)
	// The producer byte rate is charged here, on the reader, so that the
	// connection is muted before its next request is read; the response
	// leaves as soon as the records are durable, carrying the throttle.
	throttle := time.Duration(0)
	if b.quotas.Active(quota.Produce) {
		n := 0
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				n += len(rp.Records)
			}
		}
		throttle = b.quotas.Record(&c.quota, quota.Produce, c.principal, clientID(h), time.Now(), float64(n))
		c.throttle(throttle)
		resp.ThrottleMillis = int32(min(throttle.Milliseconds(), 1<<31-1))
	}
	type slot struct {
		rp    *kmsg.ProduceResponseTopicPartition
		topic string
		wait  func(context.Context) partition.ProduceResult
	}
	var slots []slot
	ackErr := error(nil)
	if req.Acks != 0 && req.Acks != 1 && req.Acks != -1 {
		ackErr = kerr.InvalidRequiredAcks
	}
	for _, rt := range req.Topics {
		name := rt.Topic
		topicErr := ackErr
		if h.Version >= 13 {
			if t, ok := b.topicByID(rt.TopicID); ok {
				name = t.Name
			} else if topicErr == nil {
				topicErr = kerr.UnknownTopicID
			}
		}
		if isInternal(name) && topicErr == nil {
			// Kafka: only the broker appends to internal topics.
			topicErr = fmt.Errorf("%w: cannot append to internal topic %s", kerr.InvalidTopicException, name)
		}
		respTopic := kmsg.ProduceResponseTopic{Topic: rt.Topic, TopicID: rt.TopicID}
		resp.Topics = append(resp.Topics, respTopic)
		rtp := &resp.Topics[len(resp.Topics)-1]
		rtp.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for i, rp := range rt.Partitions {
			out := &rtp.Partitions[i]
			*out = kmsg.ProduceResponseTopicPartition{Partition: rp.Partition, BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}
			err := topicErr
			var p *partition.Partition
			if err == nil {
				p, err = b.localLeader(name, rp.Partition)
			}
			if err != nil {
				setProduceErr(out, err)
				if errors.Is(err, kerr.NotLeaderForPartition) && h.Version >= 10 {
					b.currentLeader(resp, out, name)
				}
				continue
			}
			entry := protocol.WithPrefixByte(h.Frame, rp.Records)
			if h.Version < 3 && records.Magic(rp.Records) < 2 {
				if entry, err = legacyEntry(rp.Records); err != nil {
					setProduceErr(out, err)
					continue
				}
			}
			slots = append(slots, slot{rp: out, topic: name, wait: p.Produce(ctx, entry, req.Acks)})
		}
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	wait := func() kmsg.Response {
		wctx := ctx
		if req.Acks == -1 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, max(timeout, time.Millisecond))
			defer cancel()
		}
		failed := false
		for _, s := range slots {
			pr := s.wait(wctx)
			if pr.Err != nil {
				setProduceErr(s.rp, pr.Err)
				if errors.Is(pr.Err, kerr.NotLeaderForPartition) && h.Version >= 10 {
					b.currentLeader(resp, s.rp, s.topic) // lost leadership while waiting
				}
				failed = true
				continue
			}
			s.rp.BaseOffset, s.rp.LogAppendTime, s.rp.LogStartOffset = pr.BaseOffset, pr.LogAppendTime, pr.LogStartOffset
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				failed = failed || p.ErrorCode != 0
			}
		}
		if req.Acks == 0 && !failed {
			return nil
		}
		return resp
	}
	return result{wait: wait, noResponse: req.Acks == 0}
}

// currentLeader tells a producer that asked the wrong node where the
// partition's leader is (KIP-951, Produce v10+): the leader's id and epoch
// in the partition, its address among the response's node endpoints, so
// the client can go there without a metadata round trip.
func (b *Broker) currentLeader(resp *kmsg.ProduceResponse, out *kmsg.ProduceResponseTopicPartition, topic string) {
	leader, epoch := b.node.Leader(topic, out.Partition)
	if leader < 0 {
		return
	}
	out.CurrentLeader.LeaderID, out.CurrentLeader.LeaderEpoch = leader, epoch
	if slices.ContainsFunc(resp.Brokers, func(br kmsg.ProduceResponseBroker) bool { return br.NodeID == leader }) {
		return
	}
	if br, ok := b.broker(leader); ok {
		ep := kmsg.NewProduceResponseBroker()
		ep.NodeID, ep.Host, ep.Port, ep.Rack = br.ID, br.Host, br.Port, rackOf(br)
		resp.Brokers = append(resp.Brokers, ep)
	}
}

// broker returns a registered broker by id (the KIP-951 node endpoints).
func (b *Broker) broker(id int32) (meta.Broker, bool) {
	for _, br := range b.node.Meta().Brokers() {
		if br.ID == id {
			return br, true
		}
	}
	return meta.Broker{}, false
}

// rackOf is a broker's rack as Kafka encodes it (null when unset).
func rackOf(br meta.Broker) *string {
	if br.Rack == "" {
		return nil
	}
	return strp(br.Rack)
}

// legacyEntry converts a legacy message set (Produce v0–v2) into a log
// entry holding one v2 batch: a spare byte for the entry kind, then the
// batch.
func legacyEntry(set []byte) ([]byte, error) {
	ms, err := records.ParseMessageSet(set)
	switch {
	case errors.Is(err, records.ErrCodec):
		return nil, fmt.Errorf("%w: %w", kerr.UnsupportedCompressionType, err)
	case errors.Is(err, records.ErrMagic):
		return nil, fmt.Errorf("%w: %w", kerr.InvalidRecord, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", kerr.CorruptMessage, err)
	}
	entry, err := records.FromMessageSet(make([]byte, 1, len(set)+records.HeaderSize+1), &ms, ms.Codec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", kerr.CorruptMessage, err)
	}
	return entry, nil
}

func setProduceErr(rp *kmsg.ProduceResponseTopicPartition, err error) {
	rp.ErrorCode = codeOf(err)
	rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = -1, -1, -1
	rp.ErrorMessage = messageOf(err)
}

// localLeader returns the local partition if this node leads it, or the
// Kafka error a client should see. Reads go through localReader.
func (b *Broker) localLeader(topic string, index int32) (*partition.Partition, error) {
	return b.leaderFor(topic, index, false)
}

// localReader is localLeader for requests that read the log or its offsets
// (Fetch, ListOffsets, OffsetForLeaderEpoch, DeleteRecords): a new leader
// answers them only once it applied the no-op of its term, so its high
// watermark is never below one its predecessor published
// (raftlog.Status.Serving); clients retry NOT_LEADER_OR_FOLLOWER. Produce
// needs no such wait: its acknowledgement waits for commit anyway.
func (b *Broker) localReader(topic string, index int32) (*partition.Partition, error) {
	return b.leaderFor(topic, index, true)
}

func (b *Broker) leaderFor(topic string, index int32, read bool) (*partition.Partition, error) {
	t, ok := b.node.Meta().Topic(topic)
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		return nil, kerr.UnknownTopicOrPartition
	}
	p, ok := b.node.Partition(topic, index)
	if !ok {
		if b.node.PartitionOffline(topic, index) {
			return nil, kerr.KafkaStorageError
		}
		if leader, _ := b.node.Leader(topic, index); leader < 0 {
			return nil, kerr.LeaderNotAvailable
		}
		return nil, kerr.NotLeaderForPartition
	}
	if st := p.Group.Status(); !st.IsLeader || read && !st.Serving {
		return nil, kerr.NotLeaderForPartition
	}
	return p, nil
}
