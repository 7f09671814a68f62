package broker

// CreateTopics (key 19), versions 0–7.
//
// Validates names (Kafka's characters and length), partition count,
// replication factor against registered brokers, manual assignments and
// every config (unknown names and bad values are INVALID_CONFIG); an
// existing topic is TOPIC_ALREADY_EXISTS. validate_only checks everything
// and creates nothing. Creation commits to the metadata group and returns
// once the topic's local partitions serve (or the request timeout passes).
// v5+ responses carry the partition count, replication factor and the
// topic's effective configs; v7+ the topic id. v0 has no validate_only.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/configs"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleCreateTopics(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.CreateTopicsRequest)
	resp := kmsg.NewPtrCreateTopicsResponse()
	resp.SetVersion(h.Version)
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		out := kmsg.CreateTopicsResponseTopic{Topic: rt.Topic, NumPartitions: -1, ReplicationFactor: -1}
		terr := b.createOne(ctx, &rt, req.ValidateOnly, seen[rt.Topic] > 1, &out)
		if terr != nil {
			out.ErrorCode = terr.code.Code
			out.ErrorMessage = &terr.msg
			out.NumPartitions, out.ReplicationFactor = -1, -1
			out.Configs = nil
		}
		resp.Topics = append(resp.Topics, out)
	}
	return result{resp: resp}
}

func (b *Broker) createOne(ctx context.Context, rt *kmsg.CreateTopicsRequestTopic, validateOnly, duplicate bool, out *kmsg.CreateTopicsResponseTopic) *topicErr {
	if duplicate {
		return errWith(kerr.InvalidRequest, "topic %q appears more than once in the request", rt.Topic)
	}
	if isInternal(rt.Topic) {
		if _, ok := b.node.Meta().Topic(rt.Topic); ok {
			return errWith(kerr.TopicAlreadyExists, "topic %q already exists", rt.Topic)
		}
		return errWith(kerr.InvalidRequest, "internal topic %s is created by the broker when the first group needs it", rt.Topic)
	}
	cfgs := map[string]string{}
	for _, c := range rt.Configs {
		if c.Value == nil {
			return errWith(kerr.InvalidConfig, "config %q has a null value", c.Name)
		}
		cfgs[c.Name] = *c.Value
	}
	var assignment [][]int32
	if len(rt.ReplicaAssignment) > 0 {
		assignment = make([][]int32, len(rt.ReplicaAssignment))
		for _, a := range rt.ReplicaAssignment {
			if a.Partition < 0 || int(a.Partition) >= len(assignment) || assignment[a.Partition] != nil {
				return errWith(kerr.InvalidReplicaAssignment, "partitions of the assignment must be 0..%d, each once", len(assignment)-1)
			}
			assignment[a.Partition] = a.Replicas
		}
	}
	cmd, terr := b.createTopic(ctx, rt.Topic, rt.NumPartitions, rt.ReplicationFactor, assignment, cfgs, validateOnly)
	if terr != nil {
		return terr
	}
	out.TopicID = cmd.TopicID
	out.NumPartitions = int32(len(cmd.Replicas))
	out.ReplicationFactor = int16(len(cmd.Replicas[0]))
	res := b.resolver()
	for _, d := range configs.TopicDefs() {
		v, src, _ := res.Topic(cmd.Configs, d.Name)
		out.Configs = append(out.Configs, kmsg.CreateTopicsResponseTopicConfig{Name: d.Name, Value: strp(v), Source: int8(src)})
	}
	return nil
}
