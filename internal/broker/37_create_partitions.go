package broker

// CreatePartitions (key 37), versions 0–3.
//
// Raises a topic's partition count (never lowers it: INVALID_PARTITIONS),
// with replicas assigned as for new topics or given explicitly (one list
// per new partition, known and distinct brokers, the topic's replication
// factor). validate_only changes nothing. The new partitions serve before
// the response returns (or the timeout passes).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleCreatePartitions(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.CreatePartitionsRequest)
	resp := kmsg.NewPtrCreatePartitionsResponse()
	resp.SetVersion(h.Version)
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	for _, rt := range req.Topics {
		out := kmsg.CreatePartitionsResponseTopic{Topic: rt.Topic}
		if terr := b.createPartitions(ctx, rt, req.ValidateOnly); terr != nil {
			out.ErrorCode, out.ErrorMessage = terr.code.Code, &terr.msg
		}
		resp.Topics = append(resp.Topics, out)
	}
	return result{resp: resp}
}

func (b *Broker) createPartitions(ctx context.Context, rt kmsg.CreatePartitionsRequestTopic, validateOnly bool) *topicErr {
	t, ok := b.node.Meta().Topic(rt.Topic)
	if !ok {
		return errWith(kerr.UnknownTopicOrPartition, "topic %q does not exist", rt.Topic)
	}
	if isInternal(rt.Topic) {
		return errWith(kerr.InvalidRequest, "the partition count of internal topic %s is fixed (groups are mapped to its partitions)", rt.Topic)
	}
	cur := len(t.Partitions)
	if int(rt.Count) <= cur {
		return errWith(kerr.InvalidPartitions, "topic %q has %d partitions; the count can only grow", rt.Topic, cur)
	}
	if rt.Count > 1<<20 {
		return errWith(kerr.InvalidPartitions, "%d partitions are too many", rt.Count)
	}
	rf := len(t.Partitions[0].Replicas)
	brokers := b.brokerIDs()
	var replicas [][]int32
	if rt.Assignment != nil {
		if len(rt.Assignment) != int(rt.Count)-cur {
			return errWith(kerr.InvalidReplicaAssignment, "%d assignments for %d new partitions", len(rt.Assignment), int(rt.Count)-cur)
		}
		known := map[int32]bool{}
		for _, id := range brokers {
			known[id] = true
		}
		for i, a := range rt.Assignment {
			seen := map[int32]bool{}
			if len(a.Replicas) != rf {
				return errWith(kerr.InvalidReplicaAssignment, "new partition %d has %d replicas; the topic has replication factor %d", cur+i, len(a.Replicas), rf)
			}
			for _, id := range a.Replicas {
				if !known[id] || seen[id] {
					return errWith(kerr.InvalidReplicaAssignment, "new partition %d: replica %d is unknown or repeated", cur+i, id)
				}
				seen[id] = true
			}
			replicas = append(replicas, a.Replicas)
		}
	} else {
		if rf > len(brokers) {
			return errWith(kerr.InvalidReplicationFactor, "replication factor %d is larger than the number of brokers (%d)", rf, len(brokers))
		}
		replicas = assignReplicas(b.node.Meta().Brokers(), rt.Topic, cur, int(rt.Count)-cur, rf)
	}
	if validateOnly {
		return nil
	}
	if _, err := b.node.ProposeMeta(ctx, &meta.Command{Op: meta.OpCreatePartitions, Topic: rt.Topic, Replicas: replicas}); err != nil {
		return metaErr(err)
	}
	if err := b.node.WaitTopic(ctx, rt.Topic); err != nil {
		return errWith(kerr.RequestTimedOut, "partitions were added but did not start in time: %v", err)
	}
	return nil
}
