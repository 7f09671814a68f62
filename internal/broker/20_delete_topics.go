package broker

// DeleteTopics (key 20), versions 0–6.
//
// Deletes by name, and from v6 by name or topic id (UNKNOWN_TOPIC_ID for an
// unknown id). Deletion commits to the metadata group; every broker then
// stops the topic's partitions and removes their data (rename first, so a
// crash finishes the job at start-up). A topic created again with the same
// name starts empty.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleDeleteTopics(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.DeleteTopicsRequest)
	resp := kmsg.NewPtrDeleteTopicsResponse()
	resp.SetVersion(h.Version)
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if h.Version >= 6 {
		for _, t := range req.Topics {
			targets = append(targets, target{t.Topic, t.TopicID})
		}
	} else {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: strp(n)})
		}
	}
	for _, t := range targets {
		out := kmsg.DeleteTopicsResponseTopic{Topic: t.name, TopicID: t.id}
		var name string
		switch {
		case t.name != nil && *t.name != "":
			name = *t.name
			if mt, ok := b.node.Meta().Topic(name); ok {
				out.TopicID = mt.ID
			} else {
				out.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
		default:
			if mt, ok := b.topicByID(t.id); ok {
				name = mt.Name
				out.Topic = strp(name)
			} else {
				out.ErrorCode = kerr.UnknownTopicID.Code
			}
		}
		if out.ErrorCode == 0 && isInternal(name) {
			out.ErrorCode = kerr.InvalidTopicException.Code
			out.ErrorMessage = strp("internal topic " + name + " cannot be deleted")
		}
		if out.ErrorCode == 0 {
			if _, err := b.node.ProposeMeta(ctx, &meta.Command{Op: meta.OpDeleteTopic, Topic: name}); err != nil {
				te := metaErr(err)
				out.ErrorCode = te.code.Code
				out.ErrorMessage = &te.msg
			}
		}
		resp.Topics = append(resp.Topics, out)
	}
	return result{resp: resp}
}
