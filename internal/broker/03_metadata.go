package broker

// Metadata (key 3), versions 0–13.
//
// Brokers come from the metadata group's registrations (never a fallback to
// "just me"); leaders and leader epochs from each partition's Raft group
// (epoch = Raft term); ISR = the replicas (a single-node cluster's ISR is
// itself; the cluster issue replaces it with the tracked ISR). Topics can be
// asked for by name or, from v10, by id. Auto-creation follows Kafka: only
// when the request allows it, the broker's auto.create.topics.enable is on,
// the name is valid; the new topic is answered with LEADER_NOT_AVAILABLE
// until its partitions serve, which clients retry. No magic topics. A local
// partition whose storage failed or could not be opened is answered with
// KAFKA_STORAGE_ERROR, no leader, and this broker among its offline
// replicas (v5+), as Kafka does for a failed log directory.
// Deliberate gap: authorized operations are not computed (no authorizer):
// they are reported as Kafka does when not requested.

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/protocol"
)

// noAuthorizedOperations is Kafka's value when operations were not asked for.
const noAuthorizedOperations = -2147483648

// autoCreateWait bounds how long a Metadata request waits for topics it
// auto-creates; a topic whose partitions are not serving by then is
// answered with LEADER_NOT_AVAILABLE, which clients retry.
const autoCreateWait = 10 * time.Second

func (b *Broker) handleMetadata(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.MetadataRequest)
	autoCreate := req.Topics != nil && (h.Version < 4 || req.AllowAutoTopicCreation) && b.autoCreateEnabled()
	if autoCreate {
		for _, rt := range req.Topics {
			if rt.Topic == nil || *rt.Topic == "" {
				continue
			}
			if _, ok := b.node.Meta().Topic(*rt.Topic); !ok {
				// Creating a topic waits on the metadata group and the new
				// partitions: off the reader goroutine, bounded.
				return result{wait: func() kmsg.Response {
					ctx, cancel := context.WithTimeout(ctx, autoCreateWait)
					defer cancel()
					return b.metadata(ctx, h, req, true)
				}}
			}
		}
	}
	return result{resp: b.metadata(ctx, h, req, false)}
}

// metadata builds a Metadata response; autoCreate creates the missing
// topics that may be created.
func (b *Broker) metadata(ctx context.Context, h *protocol.Header, req *kmsg.MetadataRequest, autoCreate bool) *kmsg.MetadataResponse {
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(h.Version)
	for _, br := range b.node.Meta().Brokers() {
		resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: br.ID, Host: br.Host, Port: br.Port, Rack: rackOf(br)})
	}
	resp.ClusterID = strp(b.node.Meta().ClusterID())
	resp.ControllerID = b.node.ControllerID()
	resp.AuthorizedOperations = noAuthorizedOperations

	all := req.Topics == nil || (h.Version == 0 && len(req.Topics) == 0)
	var topics []meta.Topic
	if all {
		topics = b.node.Meta().Topics()
		for _, t := range topics {
			resp.Topics = append(resp.Topics, b.describeTopic(t))
		}
		return resp
	}
	for _, rt := range req.Topics {
		var t meta.Topic
		var ok bool
		switch {
		case rt.Topic != nil && *rt.Topic != "":
			t, ok = b.node.Meta().Topic(*rt.Topic)
		case rt.TopicID != [16]byte{}:
			if t, ok = b.topicByID(rt.TopicID); !ok {
				resp.Topics = append(resp.Topics, kmsg.MetadataResponseTopic{ErrorCode: kerr.UnknownTopicID.Code, TopicID: rt.TopicID, AuthorizedOperations: noAuthorizedOperations})
				continue
			}
		default:
			resp.Topics = append(resp.Topics, kmsg.MetadataResponseTopic{ErrorCode: kerr.InvalidTopicException.Code, Topic: rt.Topic, AuthorizedOperations: noAuthorizedOperations})
			continue
		}
		if ok {
			resp.Topics = append(resp.Topics, b.describeTopic(t))
			continue
		}
		name := *rt.Topic
		rtopic := kmsg.MetadataResponseTopic{Topic: strp(name), ErrorCode: kerr.UnknownTopicOrPartition.Code, AuthorizedOperations: noAuthorizedOperations}
		if autoCreate {
			if err := validTopicName(name); err != nil {
				rtopic.ErrorCode = kerr.InvalidTopicException.Code
			} else if _, terr := b.createTopic(ctx, name, -1, -1, nil, nil, false); terr == nil || terr.code == kerr.TopicAlreadyExists || terr.code == kerr.RequestTimedOut {
				// Created (its partitions may still be starting: they
				// answer LEADER_NOT_AVAILABLE until they serve).
				if t, ok := b.node.Meta().Topic(name); ok {
					rtopic = b.describeTopic(t)
				} else {
					rtopic.ErrorCode = kerr.LeaderNotAvailable.Code
				}
			} else {
				b.log.Warn("auto-creating topic failed", "topic", name, "err", terr.msg)
				rtopic.ErrorCode = terr.code.Code
			}
		}
		resp.Topics = append(resp.Topics, rtopic)
	}
	return resp
}

func (b *Broker) autoCreateEnabled() bool {
	v, _, _ := b.resolver().Broker("auto.create.topics.enable")
	on, _ := strconv.ParseBool(v)
	return on
}

// describeTopic is one topic of a Metadata response.
func (b *Broker) describeTopic(t meta.Topic) kmsg.MetadataResponseTopic {
	rt := kmsg.MetadataResponseTopic{Topic: strp(t.Name), TopicID: t.ID, IsInternal: isInternal(t.Name), AuthorizedOperations: noAuthorizedOperations}
	for _, p := range t.Partitions {
		leader, epoch := b.node.Leader(t.Name, p.Index)
		rp := kmsg.MetadataResponseTopicPartition{Partition: p.Index, Leader: leader, LeaderEpoch: epoch, Replicas: p.Replicas, ISR: p.Replicas}
		if isr, ok := b.node.InSync(t.Name, p.Index); ok {
			rp.ISR = isr
		}
		switch {
		case b.node.PartitionOffline(t.Name, p.Index):
			// Kafka's answer for a replica whose log directory failed: the
			// client retries and the other partitions are unaffected.
			rp.ErrorCode = kerr.KafkaStorageError.Code
			rp.Leader, rp.LeaderEpoch = -1, -1
			rp.OfflineReplicas = []int32{b.node.NodeID()}
		case leader < 0:
			rp.ErrorCode = kerr.LeaderNotAvailable.Code
			rp.LeaderEpoch = -1
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}
