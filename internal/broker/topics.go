package broker

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/chronik-go/chronik/internal/configs"
	"github.com/chronik-go/chronik/internal/meta"
)

// maxTopicNameLength is Kafka's limit.
const maxTopicNameLength = 249

// validTopicName applies Kafka's rules for topic names.
func validTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	case len(name) > maxTopicNameLength:
		return fmt.Errorf("topic name is longer than %d characters", maxTopicNameLength)
	}
	for _, c := range name {
		legal := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !legal {
			return fmt.Errorf("topic name %q contains %q; only ASCII alphanumerics, '.', '_' and '-' are allowed", name, c)
		}
	}
	return nil
}

// topicErr is a Kafka error with a message for the client.
type topicErr struct {
	code *kerr.Error
	msg  string
}

func (e *topicErr) Error() string { return e.msg }

func errWith(code *kerr.Error, format string, args ...any) *topicErr {
	return &topicErr{code: code, msg: fmt.Sprintf(format, args...)}
}

// assignReplicas spreads partitions over the brokers, rack-aware as
// Kafka's placement (broker.rack): the brokers are ordered alternating
// between racks (racks by name, brokers by id within a rack; a broker
// without a rack forms the rack ""), partition p's leader is the broker at
// (offset + p) in that order, where offset comes from the topic's name so
// that different topics' leaders land on different brokers, and its
// followers are the next brokers in order whose rack holds no replica of
// p yet, then — once every rack holds one — the next unused brokers. So
// replicas span as many racks as there are, leaders spread evenly, and
// without racks partition p simply gets rf consecutive brokers.
func assignReplicas(brokers []meta.Broker, name string, from, count, rf int) [][]int32 {
	order := rackAlternated(brokers)
	racks := map[string]bool{}
	for _, br := range brokers {
		racks[br.Rack] = true
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	start := int(h.Sum32() % uint32(len(order)))
	out := make([][]int32, count)
	for i := range out {
		first := start + from + i
		r := make([]int32, 0, rf)
		usedRack := map[string]bool{}
		used := map[int32]bool{}
		for pass := 0; pass < 2 && len(r) < rf; pass++ {
			for j := range order {
				if len(r) == rf {
					break
				}
				br := order[(first+j)%len(order)]
				if used[br.ID] || pass == 0 && usedRack[br.Rack] && len(usedRack) < len(racks) {
					continue
				}
				r = append(r, br.ID)
				used[br.ID] = true
				usedRack[br.Rack] = true
			}
		}
		out[i] = r
	}
	return out
}

// rackAlternated orders brokers one per rack in turn: the first broker of
// every rack, then the second of every rack, and so on.
func rackAlternated(brokers []meta.Broker) []meta.Broker {
	byRack := map[string][]meta.Broker{}
	for _, br := range brokers {
		byRack[br.Rack] = append(byRack[br.Rack], br)
	}
	names := slices.Sorted(maps.Keys(byRack))
	for _, n := range names {
		slices.SortFunc(byRack[n], func(a, b meta.Broker) int { return cmp.Compare(a.ID, b.ID) })
	}
	out := make([]meta.Broker, 0, len(brokers))
	for k := 0; len(out) < len(brokers); k++ {
		for _, n := range names {
			if k < len(byRack[n]) {
				out = append(out, byRack[n][k])
			}
		}
	}
	return out
}

func (b *Broker) brokerIDs() []int32 {
	var ids []int32
	for _, br := range b.node.Meta().Brokers() {
		ids = append(ids, br.ID)
	}
	return ids
}

// defaultPartitions is num.partitions, dynamic value first.
func (b *Broker) defaultPartitions() int {
	v, _, _ := b.resolver().Broker("num.partitions")
	n, _ := strconv.Atoi(v)
	return max(n, 1)
}

func (b *Broker) resolver() configs.Resolver {
	return configs.Resolver{Static: b.node.Config(), Dynamic: b.node.Meta().BrokerConfigs()}
}

// createTopic validates and (unless validateOnly) creates a topic, then
// waits until its local partitions serve. partitions or rf of -1 take the
// broker defaults; assignment, when given, fixes the replicas.
func (b *Broker) createTopic(ctx context.Context, name string, partitions int32, rf int16, assignment [][]int32, cfgs map[string]string, validateOnly bool) (*meta.Command, *topicErr) {
	if err := validTopicName(name); err != nil {
		return nil, errWith(kerr.InvalidTopicException, "%v", err)
	}
	if _, ok := b.node.Meta().Topic(name); ok {
		return nil, errWith(kerr.TopicAlreadyExists, "topic %q already exists", name)
	}
	brokers := b.brokerIDs()
	if len(brokers) == 0 {
		return nil, errWith(kerr.BrokerNotAvailable, "no broker is registered yet")
	}
	if err := configs.ValidateTopic(cfgs); err != nil {
		return nil, errWith(kerr.InvalidConfig, "%v", err)
	}
	var replicas [][]int32
	if len(assignment) > 0 {
		if partitions != -1 || rf != -1 {
			return nil, errWith(kerr.InvalidRequest, "both a replica assignment and a partition count or replication factor were given")
		}
		known := map[int32]bool{}
		for _, id := range brokers {
			known[id] = true
		}
		for i, r := range assignment {
			seen := map[int32]bool{}
			if len(r) == 0 || len(r) != len(assignment[0]) {
				return nil, errWith(kerr.InvalidReplicaAssignment, "partition %d has %d replicas; every partition needs the same non-zero count", i, len(r))
			}
			for _, id := range r {
				if !known[id] || seen[id] {
					return nil, errWith(kerr.InvalidReplicaAssignment, "partition %d: replica %d is unknown or repeated", i, id)
				}
				seen[id] = true
			}
		}
		replicas = assignment
	} else {
		if partitions == -1 {
			partitions = int32(b.defaultPartitions())
		}
		if rf == -1 {
			v, _, _ := b.resolver().Broker("default.replication.factor")
			n, _ := strconv.Atoi(v)
			rf = int16(n)
		}
		switch {
		case partitions <= 0:
			return nil, errWith(kerr.InvalidPartitions, "number of partitions must be at least 1, got %d", partitions)
		case partitions > 1<<20:
			return nil, errWith(kerr.InvalidPartitions, "number of partitions %d is too large", partitions)
		case rf <= 0:
			return nil, errWith(kerr.InvalidReplicationFactor, "replication factor must be at least 1, got %d", rf)
		case int(rf) > len(brokers):
			return nil, errWith(kerr.InvalidReplicationFactor, "replication factor %d is larger than the number of brokers (%d)", rf, len(brokers))
		}
		replicas = assignReplicas(b.node.Meta().Brokers(), name, 0, int(partitions), int(rf))
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	cmd := &meta.Command{Op: meta.OpCreateTopic, Topic: name, TopicID: id, Replicas: replicas, Configs: cfgs}
	if validateOnly {
		return cmd, nil
	}
	if _, err := b.node.ProposeMeta(ctx, cmd); err != nil {
		return nil, metaErr(err)
	}
	if err := b.node.WaitTopic(ctx, name); err != nil {
		return nil, errWith(kerr.RequestTimedOut, "topic %q was created but its partitions did not start in time: %v", name, err)
	}
	return cmd, nil
}

// metaErr maps a metadata command failure to a Kafka error.
func metaErr(err error) *topicErr {
	switch {
	case errors.Is(err, meta.ErrTopicExists):
		return errWith(kerr.TopicAlreadyExists, "%v", err)
	case errors.Is(err, meta.ErrUnknownTopic):
		return errWith(kerr.UnknownTopicOrPartition, "%v", err)
	case errors.Is(err, meta.ErrInvalidConfig):
		return errWith(kerr.InvalidConfig, "%v", err)
	case errors.Is(err, meta.ErrInvalid):
		return errWith(kerr.InvalidRequest, "%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errWith(kerr.RequestTimedOut, "%v", err)
	default:
		return errWith(kerr.NotController, "metadata change failed: %v", err)
	}
}

// topicByID finds a topic name by id.
func (b *Broker) topicByID(id [16]byte) (meta.Topic, bool) {
	for _, t := range b.node.Meta().Topics() {
		if t.ID == id {
			return t, true
		}
	}
	return meta.Topic{}, false
}

func strp(s string) *string { return &s }
