package meta

import (
	"reflect"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/quota"
)

// A state restored from a snapshot answers like the state it was taken
// from, and goes on applying commands the same way.
func TestSnapshotRestoreIsTheSameState(t *testing.T) {
	ents := []*pb.Entry{
		entry(1, &Command{Op: OpInitCluster, ClusterID: "c1"}),
		entry(2, &Command{Op: OpRegisterBroker, Broker: &Broker{ID: 1, Host: "h", Port: 9092, Rack: "r1"}}),
		entry(3, &Command{Op: OpCreateTopic, Topic: "a", TopicID: [16]byte{7}, Replicas: [][]int32{{1}, {1}}, Configs: map[string]string{"retention.ms": "5"}}),
		entry(4, &Command{Op: OpAlterBrokerConfigs, Configs: map[string]string{"num.partitions": "3"}}),
		entry(5, &Command{Op: OpAllocateProducerIDs, Broker: &Broker{ID: 1}, Count: 1000}),
		entry(6, &Command{Op: OpAlterClientQuotas, Quotas: []QuotaAlteration{{Entity: quota.Entity{UserPart: quota.Named, User: "u"}, Set: map[string]float64{"producer_byte_rate": 1024}}}}),
		entry(7, &Command{Op: OpPartitionLeader, Topic: "a", Partition: 1, Leader: 1, Epoch: 3, ISR: []int32{1}}),
		{Index: new(uint64(8))}, // a leader's empty entry
	}
	a := NewState(nil, nil)
	if err := a.Apply(ents); err != nil {
		t.Fatal(err)
	}
	idx, data, err := a.Snapshot()
	if err != nil || idx != 8 {
		t.Fatalf("snapshot at %d: %v", idx, err)
	}
	b := NewState(nil, nil)
	if err := b.Restore(idx, data); err != nil {
		t.Fatal(err)
	}
	if err := b.Restore(idx+1, data); err == nil {
		t.Fatal("a snapshot offered for another index was accepted")
	}
	if len(a.Quotas()) != 1 || len(a.Topics()) != 1 {
		t.Fatalf("the commands did not build the state the test wants: quotas %v, topics %v", a.Quotas(), a.Topics())
	}
	if !reflect.DeepEqual(a.Topics(), b.Topics()) || !reflect.DeepEqual(a.Brokers(), b.Brokers()) || a.ClusterID() != b.ClusterID() ||
		!reflect.DeepEqual(a.BrokerConfigs(), b.BrokerConfigs()) || !reflect.DeepEqual(a.Quotas(), b.Quotas()) || b.Applied() != 8 {
		t.Fatalf("restored state differs:\n%+v\n%+v", a.Topics(), b.Topics())
	}
	// Both go on alike: new groups and producer ids continue, not repeat.
	more := []*pb.Entry{
		entry(9, &Command{Op: OpCreateTopic, Topic: "b", Replicas: [][]int32{{1}}}),
		entry(10, &Command{Op: OpAllocateProducerIDs, Broker: &Broker{ID: 1}, Count: 1000}),
	}
	for _, s := range []*State{a, b} {
		if err := s.Apply(more); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(a.Topics(), b.Topics()) {
		t.Fatalf("after more commands:\n%+v\n%+v", a.Topics(), b.Topics())
	}
	fa, _, _ := a.ProducerIDBlock(10)
	fb, _, _ := b.ProducerIDBlock(10)
	if fa != fb || fa < 1000 {
		t.Fatalf("producer id blocks after restore: %d and %d", fa, fb)
	}
}
