// Package group is the consumer-group coordinator: the classic group
// protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup with static
// membership and KIP-394's member-id-required flow), the KIP-848 consumer
// protocol, and committed offsets. The state machine in this file and
// classic.go is pure: no goroutines, no I/O, time passed in. The
// Coordinator (coordinator.go) runs it on one goroutine per
// __consumer_offsets partition and persists what must survive in that
// partition, in Kafka's record format.
package group

import (
	"sort"
	"time"
)

// State is a classic group's state, named as Kafka names it.
type State int

// Group states.
const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

func (s State) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

// Config holds the coordinator's limits (Kafka's group.* settings).
type Config struct {
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms
	InitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms
	MaxSize               int           // group.max.size
	OffsetsRetention      time.Duration // offsets.retention.minutes
	MaxMetadataBytes      int           // offset.metadata.max.bytes
	// OnRebalance, when set, is told of every rebalance a group starts
	// ("classic": to PreparingRebalance; "consumer": a new group epoch).
	OnRebalance func(protocol string)
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{MinSessionTimeout: 6 * time.Second, MaxSessionTimeout: 30 * time.Minute, InitialRebalanceDelay: 3 * time.Second,
		MaxSize: 1 << 30, OffsetsRetention: 7 * 24 * time.Hour, MaxMetadataBytes: 4096}
}

// Protocol is one assignment protocol a member supports.
type Protocol struct {
	Name     string
	Metadata []byte
}

// Member is one member of a classic group.
type Member struct {
	ID               string
	InstanceID       *string
	ClientID         string
	ClientHost       string
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	Protocols        []Protocol
	Assignment       []byte

	lastSeen time.Time
	join     *JoinWaiter // waiting JoinGroup
	sync     *SyncWaiter // waiting SyncGroup
}

func (m *Member) metadata(protocol string) []byte {
	for _, p := range m.Protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offset is a committed offset.
type Offset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitTime  time.Time
}

// Group is one consumer group: its classic membership (or, for consumer
// groups, its KIP-848 state) and its committed offsets.
type Group struct {
	ID           string
	State        State
	ProtocolType string
	Protocol     string
	Generation   int32
	Leader       string
	Members      map[string]*Member
	// static maps group.instance.id to the member id that holds it.
	static map[string]string
	// pending are member ids handed out by MEMBER_ID_REQUIRED, waiting for
	// the member to join with them, and when they lapse.
	pending map[string]time.Time
	// rebalanceDeadline ends PreparingRebalance; initialDelay marks the
	// first rebalance of an empty group, which waits for more members.
	rebalanceDeadline time.Time
	initialDelay      bool
	stateSince        time.Time

	Offsets map[TopicPartition]Offset
	// emptySince is when the group last became empty (offset expiry).
	emptySince time.Time

	// Consumer is set for KIP-848 groups (consumer.go).
	Consumer *ConsumerGroup
}

func newGroup(id string, now time.Time) *Group {
	return &Group{ID: id, Members: map[string]*Member{}, static: map[string]string{}, pending: map[string]time.Time{},
		Offsets: map[TopicPartition]Offset{}, stateSince: now, emptySince: now}
}

func (g *Group) setState(s State, now time.Time) {
	if s == Empty && g.State != Empty {
		g.emptySince = now
	}
	g.State, g.stateSince = s, now
}

// memberIDs returns the member ids in a stable order (join order is not
// kept; sorting makes every node and every test see the same order).
func (g *Group) memberIDs() []string {
	ids := make([]string, 0, len(g.Members))
	for id := range g.Members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// IsEmpty reports a group without members (classic or consumer).
func (g *Group) IsEmpty() bool {
	if g.Consumer != nil {
		return len(g.Consumer.Members) == 0
	}
	return len(g.Members) == 0
}

// StateName is the group's state as DescribeGroups and ListGroups report it.
func (g *Group) StateName() string {
	if g.Consumer != nil {
		return g.Consumer.stateName()
	}
	return g.State.String()
}

// Type is "classic" or "consumer" (ListGroups v5).
func (g *Group) Type() string {
	if g.Consumer != nil {
		return "consumer"
	}
	return "classic"
}
