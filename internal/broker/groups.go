package broker

// Shared pieces of the group APIs (keys 8–16, 42, 47, 68, 69): the
// internal offsets topic, the view of topics the coordinator assigns from,
// and the step from a request to the shard that owns its group.

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-go/chronik/internal/group"
	"github.com/chronik-go/chronik/internal/meta"
)

// isInternal reports Kafka's internal topics: clients may not produce to
// them, delete them or add partitions to them.
func isInternal(topic string) bool { return topic == group.OffsetsTopic }

// offsetsTopicOnce serialises the creation of __consumer_offsets.
var offsetsTopicMu sync.Mutex

// ensureOffsetsTopic creates __consumer_offsets when the first group
// request needs it, as Kafka does, and waits for its partitions to serve.
// Its cleanup.policy is compact: the coordinator rewrites the live state and
// drops older log, so neither time nor size retention applies.
func (b *Broker) ensureOffsetsTopic(ctx context.Context) *kerr.Error {
	if _, ok := b.node.Meta().Topic(group.OffsetsTopic); ok {
		return nil
	}
	offsetsTopicMu.Lock()
	defer offsetsTopicMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, ok := b.node.Meta().Topic(group.OffsetsTopic); !ok {
		cfg := b.node.Config()
		rf := min(int(cfg.OffsetsTopicReplication), len(b.brokerIDs()))
		_, terr := b.createTopic(ctx, group.OffsetsTopic, cfg.OffsetsTopicPartitions, int16(max(rf, 1)), nil,
			map[string]string{"cleanup.policy": "compact", "segment.bytes": "104857600"}, false)
		if terr != nil && terr.code != kerr.TopicAlreadyExists {
			b.log.Warn("creating the offsets topic failed", "err", terr.msg)
			return kerr.CoordinatorNotAvailable
		}
		b.log.Info("created the offsets topic", "topic", group.OffsetsTopic, "partitions", cfg.OffsetsTopicPartitions, "replication", rf)
	}
	if err := b.node.WaitTopic(ctx, group.OffsetsTopic); err != nil {
		return kerr.CoordinatorNotAvailable
	}
	b.node.Coordinator().Nudge()
	return nil
}

// topicsView is the metadata as the KIP-848 assignors see it. Internal
// topics are in it: Kafka assigns __consumer_offsets to a member that
// subscribes to it by name or by a regex that matches it.
type topicsView struct{ m *meta.State }

func (v topicsView) Topic(name string) (group.TopicInfo, bool) {
	t, ok := v.m.Topic(name)
	if !ok {
		return group.TopicInfo{}, false
	}
	return group.TopicInfo{ID: t.ID, Partitions: int32(len(t.Partitions))}, true
}

func (v topicsView) Names() []string {
	var out []string
	for _, t := range v.m.Topics() {
		out = append(out, t.Name)
	}
	return out
}

// knownPartition reports whether a topic partition exists (OffsetCommit
// refuses others with UNKNOWN_TOPIC_OR_PARTITION).
func (b *Broker) knownPartition() func(group.TopicPartition) bool {
	m := b.node.Meta()
	return func(tp group.TopicPartition) bool {
		t, ok := m.Topic(tp.Topic)
		return ok && tp.Partition >= 0 && int(tp.Partition) < len(t.Partitions)
	}
}

// topicNameByID resolves a topic id (OffsetCommit/OffsetFetch v10).
func (b *Broker) topicNameByID(id [16]byte) (string, bool) {
	t, ok := b.topicByID(id)
	return t.Name, ok
}

// groupCode is the error code of a coordinator error (0 for nil).
func groupCode(e *kerr.Error) int16 {
	if e == nil {
		return 0
	}
	return e.Code
}

// groupWait bounds how long a group request may wait for its reply when the
// request itself has no timeout: longer than any rebalance can take.
const groupWait = 30 * time.Minute
