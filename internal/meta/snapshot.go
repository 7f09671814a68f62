package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/chronik-go/chronik/internal/quota"
)

// snapshotVersion is the first byte of an encoded snapshot
// (docs/format/metadata.md).
const snapshotVersion = 1

// stateSnapshot is the whole applied state, JSON-encoded.
type stateSnapshot struct {
	Index     uint64            `json:"index"`
	Brokers   []Broker          `json:"brokers"`
	Topics    []Topic           `json:"topics"`
	NextGroup uint64            `json:"next_group"`
	ClusterID string            `json:"cluster_id,omitempty"`
	NextPID   int64             `json:"next_pid"`
	BrokerCfg map[string]string `json:"broker_configs,omitempty"`
	Quotas    []entityQuotas    `json:"quotas,omitempty"`
}

type entityQuotas struct {
	Entity quota.Entity `json:"entity"`
	Values quota.Values `json:"values"`
}

// Applied returns the index of the last entry applied.
func (s *State) Applied() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// Snapshot encodes the whole state and returns it with the index of the
// last entry it includes. Transient bookkeeping (recent outcomes and
// producer-id blocks for proposers that wait, watchers) is not part of it.
func (s *State) Snapshot() (uint64, []byte, error) {
	s.mu.RLock()
	snap := stateSnapshot{Index: s.applied, NextGroup: s.nextGroup, ClusterID: s.clusterID, NextPID: s.nextPID, BrokerCfg: s.brokerCfg}
	for _, id := range slices.Sorted(maps.Keys(s.brokers)) {
		snap.Brokers = append(snap.Brokers, *s.brokers[id])
	}
	for _, name := range slices.Sorted(maps.Keys(s.topics)) {
		snap.Topics = append(snap.Topics, *s.topics[name])
	}
	for e, v := range s.quotas {
		snap.Quotas = append(snap.Quotas, entityQuotas{e, v})
	}
	b, err := json.Marshal(snap)
	s.mu.RUnlock()
	if err != nil {
		return 0, nil, fmt.Errorf("meta: encode snapshot: %w", err)
	}
	return snap.Index, append([]byte{snapshotVersion}, b...), nil
}

// Restore replaces the state with a snapshot taken at index
// (raftlog.Restorer). Watchers are not told: they see the commands applied
// after it.
func (s *State) Restore(index uint64, data []byte) error {
	if len(data) == 0 || data[0] != snapshotVersion {
		return errors.New("meta: unknown snapshot version")
	}
	var snap stateSnapshot
	if err := json.Unmarshal(data[1:], &snap); err != nil {
		return fmt.Errorf("meta: decode snapshot: %w", err)
	}
	if snap.Index != index {
		return fmt.Errorf("meta: snapshot of index %d offered as index %d", snap.Index, index)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.brokers = map[int32]*Broker{}
	for _, b := range snap.Brokers {
		s.brokers[b.ID] = &b
	}
	s.topics = map[string]*Topic{}
	for _, t := range snap.Topics {
		s.topics[t.Name] = &t
	}
	s.nextGroup, s.clusterID, s.nextPID = snap.NextGroup, snap.ClusterID, snap.NextPID
	s.brokerCfg = snap.BrokerCfg
	if s.brokerCfg == nil {
		s.brokerCfg = map[string]string{}
	}
	s.quotas = map[quota.Entity]quota.Values{}
	for _, q := range snap.Quotas {
		s.quotas[q.Entity] = q.Values
	}
	s.applied = index
	return nil
}
