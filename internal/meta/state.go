// Package meta is the state machine of the metadata Raft group: brokers,
// topics, their partitions (each one Raft group), configs and client
// quotas. Commands are applied in log order on every node, so every
// decision that must agree across nodes (topic ids, group ids, existence
// checks) is made in Apply, never by the proposer. It must never do I/O or
// read the clock in Apply.
package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/quota"
)

// MetadataGroup is the Raft group id of the metadata group; partition
// groups get ids above it, assigned in Apply.
const MetadataGroup uint64 = 1

// Command errors, decided in Apply.
var (
	ErrTopicExists   = errors.New("topic already exists")
	ErrUnknownTopic  = errors.New("unknown topic")
	ErrInvalidConfig = errors.New("invalid config")
	ErrInvalid       = errors.New("invalid request")
)

// Broker is a registered node.
type Broker struct {
	ID   int32  `json:"id"`
	Host string `json:"host"`
	Port int32  `json:"port"`
	Rack string `json:"rack,omitempty"`
}

// Partition is one partition of a topic and its Raft group.
type Partition struct {
	Index    int32   `json:"index"`
	Group    uint64  `json:"group"`
	Replicas []int32 `json:"replicas"`
	// Leader and Epoch are the last leadership a leader reported (Epoch =
	// its Raft term; 0: none reported yet). Nodes that do not host the
	// partition answer Metadata from them.
	Leader int32 `json:"leader,omitempty"`
	Epoch  int32 `json:"epoch,omitempty"`
	// ISR is the in-sync replicas the leader last reported (nil: none).
	ISR []int32 `json:"isr,omitempty"`
}

// Topic is a topic and its partitions.
type Topic struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Partitions []Partition       `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// Command is one entry of the metadata log, JSON-encoded after a version
// byte (docs/format/metadata.md).
type Command struct {
	// ID identifies a command so that a node whose proposal a leader
	// committed for it can find the outcome (random; may be empty).
	ID               string            `json:"id,omitempty"`
	Op               string            `json:"op"`
	Broker           *Broker           `json:"broker,omitempty"`
	Topic            string            `json:"topic,omitempty"`
	TopicID          [16]byte          `json:"topic_id,omitzero"`
	Replicas         [][]int32         `json:"replicas,omitempty"`
	ClusterID        string            `json:"cluster_id,omitempty"`
	Count            int64             `json:"count,omitempty"`
	Configs          map[string]string `json:"configs,omitempty"`
	DeleteConfigKeys []string          `json:"delete_configs,omitempty"`
	// Partition, Leader, Epoch and ISR: OpPartitionLeader.
	Partition int32             `json:"partition,omitempty"`
	Leader    int32             `json:"leader,omitempty"`
	Epoch     int32             `json:"epoch,omitempty"`
	ISR       []int32           `json:"isr,omitempty"`
	Quotas    []QuotaAlteration `json:"quotas,omitempty"`
}

// QuotaAlteration sets and removes client quota keys of one entity
// (OpAlterClientQuotas). An entity left without keys is gone.
type QuotaAlteration struct {
	Entity quota.Entity       `json:"entity"`
	Set    map[string]float64 `json:"set,omitempty"`
	Remove []string           `json:"remove,omitempty"`
}

// Command ops.
const (
	OpRegisterBroker   = "register_broker"
	OpCreateTopic      = "create_topic"
	OpDeleteTopic      = "delete_topic"
	OpAlterConfigs     = "alter_configs"
	OpCreatePartitions = "create_partitions"
	// OpInitCluster sets the cluster id once; later ones are ignored.
	OpInitCluster = "init_cluster"
	// OpAlterBrokerConfigs sets (Configs) and removes (DeleteConfigKeys)
	// dynamic broker defaults.
	OpAlterBrokerConfigs = "alter_broker_configs"
	// OpAllocateProducerIDs reserves Count producer ids for Broker.ID;
	// the block's first id is the entry's Result (see ProducerIDBlock).
	OpAllocateProducerIDs = "allocate_producer_ids"
	// OpPartitionLeader records that Leader leads Topic's Partition in
	// Epoch with in-sync replicas ISR (a newer epoch replaces an older one,
	// the same leader and epoch updates the ISR; a stale one is ignored).
	OpPartitionLeader = "partition_leader"
	// OpElectPreferred asks the leader of Topic's Partition to hand
	// leadership to its preferred replica (ElectLeaders); it changes no
	// state: the leader acts on it when it is applied.
	OpElectPreferred = "elect_preferred"
	// OpAlterClientQuotas applies Quotas, all or none: an invalid entity,
	// key or value fails the whole command.
	OpAlterClientQuotas = "alter_client_quotas"
)

const commandVersion = 1

// Encode serialises a command for proposal.
func Encode(c *Command) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append([]byte{commandVersion}, b...), nil
}

// Decode parses a command.
func Decode(b []byte) (*Command, error) {
	if len(b) == 0 || b[0] != commandVersion {
		return nil, errors.New("meta: unknown command version")
	}
	c := &Command{}
	if err := json.Unmarshal(b[1:], c); err != nil {
		return nil, fmt.Errorf("meta: decode command: %w", err)
	}
	return c, nil
}

// Validator checks topic configs; the broker supplies Kafka's rules.
type Validator func(configs map[string]string) error

// State is the applied metadata. Apply runs on the metadata group's
// goroutine; readers take snapshots through the accessor methods.
type State struct {
	mu        sync.RWMutex
	brokers   map[int32]*Broker
	topics    map[string]*Topic
	nextGroup uint64
	clusterID string
	nextPID   int64
	pidBlocks map[uint64][2]int64 // recent producer id blocks, by index
	brokerCfg map[string]string   // dynamic broker defaults
	quotas    map[quota.Entity]quota.Values
	results   map[uint64]error // outcome of recent entries, by index
	awaiting  map[string]chan Outcome
	validate  Validator
	validateB Validator
	watchers  []func(*Command)
	applied   uint64 // index of the last entry applied
}

// NewState returns an empty state that validates topic configs with
// topics and dynamic broker configs with brokers (either may be nil).
func NewState(topics, brokers Validator) *State {
	return &State{brokers: map[int32]*Broker{}, topics: map[string]*Topic{}, nextGroup: MetadataGroup + 1, results: map[uint64]error{}, awaiting: map[string]chan Outcome{},
		pidBlocks: map[uint64][2]int64{}, brokerCfg: map[string]string{}, quotas: map[quota.Entity]quota.Values{}, validate: topics, validateB: brokers}
}

// OnApply registers fn to run after each applied command (on the metadata
// group's goroutine; it must not block).
func (s *State) OnApply(fn func(*Command)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchers = append(s.watchers, fn)
}

const keepResults = 4096

// Apply applies committed entries (raftlog.StateMachine).
func (s *State) Apply(ents []*pb.Entry) error {
	var applied []*Command
	s.mu.Lock()
	for _, e := range ents {
		s.applied = max(s.applied, e.GetIndex())
		if len(e.Data) == 0 {
			continue
		}
		c, err := Decode(e.Data)
		if err == nil {
			err = s.applyLocked(e.GetIndex(), c)
			if err == nil {
				applied = append(applied, c)
			}
		}
		s.results[e.GetIndex()] = err
		if c != nil && c.ID != "" {
			if ch, ok := s.awaiting[c.ID]; ok {
				ch <- Outcome{Index: e.GetIndex(), Err: err}
				delete(s.awaiting, c.ID)
			}
		}
		delete(s.results, e.GetIndex()-keepResults)
		delete(s.pidBlocks, e.GetIndex()-keepResults)
	}
	watchers := slices.Clone(s.watchers)
	s.mu.Unlock()
	for _, c := range applied {
		for _, w := range watchers {
			w(c)
		}
	}
	return nil
}

// Outcome is what applying a command gave.
type Outcome struct {
	Index uint64
	Err   error
}

// Await returns a channel that receives the outcome of the command with
// this id when it is applied; forget releases it if the caller gives up.
func (s *State) Await(id string) (outcome <-chan Outcome, forget func()) {
	ch := make(chan Outcome, 1)
	s.mu.Lock()
	s.awaiting[id] = ch
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		if s.awaiting[id] == ch {
			delete(s.awaiting, id)
		}
		s.mu.Unlock()
	}
}

// Result returns the outcome of the command committed at index.
func (s *State) Result(index uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.results[index]
}

func (s *State) applyLocked(index uint64, c *Command) error {
	switch c.Op {
	case OpInitCluster:
		if s.clusterID == "" && c.ClusterID != "" {
			s.clusterID = c.ClusterID
		}
	case OpAlterBrokerConfigs:
		next := maps.Clone(s.brokerCfg)
		maps.Copy(next, c.Configs)
		for _, k := range c.DeleteConfigKeys {
			delete(next, k)
		}
		if s.validateB != nil {
			if err := s.validateB(c.Configs); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
			}
		}
		s.brokerCfg = next
	case OpPartitionLeader:
		t, ok := s.topics[c.Topic]
		if !ok || t.ID != c.TopicID || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
			return ErrUnknownTopic
		}
		// A newer epoch replaces the record; the same epoch's leader may
		// report its in-sync replicas again.
		if p := &t.Partitions[c.Partition]; c.Epoch > p.Epoch || c.Epoch == p.Epoch && c.Leader == p.Leader {
			p.Leader, p.Epoch, p.ISR = c.Leader, c.Epoch, slices.Clone(c.ISR)
		}
	case OpElectPreferred:
		t, ok := s.topics[c.Topic]
		if !ok || c.Partition < 0 || int(c.Partition) >= len(t.Partitions) {
			return ErrUnknownTopic
		}
	case OpAllocateProducerIDs:
		if c.Count <= 0 || c.Count > 1<<20 {
			return ErrInvalid
		}
		s.pidBlocks[index] = [2]int64{s.nextPID, c.Count}
		s.nextPID += c.Count
	case OpRegisterBroker:
		if c.Broker == nil || c.Broker.ID < 0 {
			return ErrInvalid
		}
		b := *c.Broker
		s.brokers[b.ID] = &b
	case OpCreateTopic:
		if _, ok := s.topics[c.Topic]; ok {
			return ErrTopicExists
		}
		if c.Topic == "" || len(c.Replicas) == 0 {
			return ErrInvalid
		}
		if s.validate != nil {
			if err := s.validate(c.Configs); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
			}
		}
		t := &Topic{Name: c.Topic, ID: c.TopicID, Configs: maps.Clone(c.Configs)}
		s.addPartitions(t, c.Replicas)
		s.topics[c.Topic] = t
	case OpDeleteTopic:
		if _, ok := s.topics[c.Topic]; !ok {
			return ErrUnknownTopic
		}
		delete(s.topics, c.Topic)
	case OpAlterConfigs:
		t, ok := s.topics[c.Topic]
		if !ok {
			return ErrUnknownTopic
		}
		next := maps.Clone(t.Configs)
		if next == nil {
			next = map[string]string{}
		}
		maps.Copy(next, c.Configs)
		for _, k := range c.DeleteConfigKeys {
			delete(next, k)
		}
		if s.validate != nil {
			if err := s.validate(next); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
			}
		}
		t.Configs = next
	case OpAlterClientQuotas:
		return s.alterQuotasLocked(c.Quotas)
	case OpCreatePartitions:
		t, ok := s.topics[c.Topic]
		if !ok {
			return ErrUnknownTopic
		}
		s.addPartitions(t, c.Replicas)
	default:
		return fmt.Errorf("%w: unknown op %q", ErrInvalid, c.Op)
	}
	return nil
}

// alterQuotasLocked validates every alteration before changing anything,
// so a command applies whole or not at all.
func (s *State) alterQuotasLocked(alts []QuotaAlteration) error {
	for _, a := range alts {
		if !a.Entity.Valid() {
			return fmt.Errorf("%w: quota entity %+v", ErrInvalid, a.Entity)
		}
		for k, v := range a.Set {
			if err := quota.ValidateValue(k, v); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
			}
		}
		for _, k := range a.Remove {
			if err := quota.ValidateValue(k, 1); errors.Is(err, quota.ErrUnknownKey) {
				return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
			}
		}
	}
	for _, a := range alts {
		next := maps.Clone(s.quotas[a.Entity])
		if next == nil {
			next = quota.Values{}
		}
		maps.Copy(next, a.Set)
		for _, k := range a.Remove {
			delete(next, k)
		}
		if len(next) == 0 {
			delete(s.quotas, a.Entity)
		} else {
			s.quotas[a.Entity] = next
		}
	}
	return nil
}

// Quotas returns a copy of every client quota, by entity.
func (s *State) Quotas() map[quota.Entity]quota.Values {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[quota.Entity]quota.Values, len(s.quotas))
	for e, v := range s.quotas {
		out[e] = maps.Clone(v)
	}
	return out
}

func (s *State) addPartitions(t *Topic, replicas [][]int32) {
	for _, r := range replicas {
		t.Partitions = append(t.Partitions, Partition{Index: int32(len(t.Partitions)), Group: s.nextGroup, Replicas: slices.Clone(r)})
		s.nextGroup++
	}
}

// BrokerConfigs returns the dynamic broker defaults.
func (s *State) BrokerConfigs() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.brokerCfg)
}

// ClusterID returns the cluster id ("" before initialisation).
func (s *State) ClusterID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clusterID
}

// ProducerIDBlock returns the first id and size of the block allocated by
// the OpAllocateProducerIDs entry at index.
func (s *State) ProducerIDBlock(index uint64) (first, count int64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.pidBlocks[index]
	return b[0], b[1], ok
}

// Brokers returns the registered brokers ordered by id.
func (s *State) Brokers() []Broker {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Broker, 0, len(s.brokers))
	for _, b := range s.brokers {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Topic returns a copy of the named topic.
func (s *State) Topic(name string) (Topic, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.topics[name]
	if !ok {
		return Topic{}, false
	}
	return copyTopic(t), true
}

// Topics returns copies of every topic ordered by name.
func (s *State) Topics() []Topic {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Topic, 0, len(s.topics))
	for _, t := range s.topics {
		out = append(out, copyTopic(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func copyTopic(t *Topic) Topic {
	c := *t
	c.Partitions = slices.Clone(t.Partitions)
	c.Configs = maps.Clone(t.Configs)
	return c
}
