package meta

import (
	"bytes"
	"errors"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/quota"
)

func entry(index uint64, c *Command) *pb.Entry {
	b, err := Encode(c)
	if err != nil {
		panic(err)
	}
	return &pb.Entry{Index: &index, Data: b}
}

func TestApplyDecidesOutcomes(t *testing.T) {
	s := NewState(func(c map[string]string) error {
		if c["retention.ms"] == "bad" {
			return errors.New("retention.ms must be a number")
		}
		return nil
	}, nil)
	ents := []*pb.Entry{
		entry(1, &Command{Op: OpRegisterBroker, Broker: &Broker{ID: 1, Host: "h", Port: 9092}}),
		entry(2, &Command{Op: OpCreateTopic, Topic: "a", Replicas: [][]int32{{1}, {1}}}),
		entry(3, &Command{Op: OpCreateTopic, Topic: "a", Replicas: [][]int32{{1}}}),
		entry(4, &Command{Op: OpCreateTopic, Topic: "b", Replicas: [][]int32{{1}}, Configs: map[string]string{"retention.ms": "bad"}}),
		entry(5, &Command{Op: OpCreatePartitions, Topic: "a", Replicas: [][]int32{{1}}}),
		entry(6, &Command{Op: OpDeleteTopic, Topic: "zzz"}),
	}
	if err := s.Apply(ents); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]error{1: nil, 2: nil, 3: ErrTopicExists, 4: ErrInvalidConfig, 5: nil, 6: ErrUnknownTopic}
	for i, w := range want {
		if got := s.Result(i); !errors.Is(got, w) || (w == nil) != (got == nil) {
			t.Fatalf("entry %d: %v, want %v", i, got, w)
		}
	}
	a, ok := s.Topic("a")
	if !ok || len(a.Partitions) != 3 {
		t.Fatalf("topic a: %+v", a)
	}
	// Group ids are assigned in apply order and never reused.
	if a.Partitions[0].Group != MetadataGroup+1 || a.Partitions[2].Group != MetadataGroup+3 {
		t.Fatalf("group ids %+v", a.Partitions)
	}
	if len(s.Brokers()) != 1 {
		t.Fatalf("brokers %+v", s.Brokers())
	}
}

// FuzzCommand: Decode never panics, and once decoded a command encodes to
// the same bytes however often it goes round (empty and absent lists are
// the same command).
func FuzzCommand(f *testing.F) {
	for _, c := range []*Command{
		{Op: OpCreateTopic, Topic: "orders", Replicas: [][]int32{{1, 2, 3}}, Configs: map[string]string{"retention.ms": "1000"}},
		{Op: OpRegisterBroker, Broker: &Broker{ID: 2, Host: "node2", Port: 9092}},
		{Op: OpAlterConfigs, Topic: "t", DeleteConfigKeys: []string{"x"}},
	} {
		b, _ := Encode(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		re, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Decode(re)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		re2, _ := Encode(c2)
		if !bytes.Equal(re, re2) {
			t.Fatalf("command changed on round trip: %s vs %s", re, re2)
		}
	})
}

func TestApplyClientQuotas(t *testing.T) {
	alice := quota.Entity{UserPart: quota.Named, User: "alice"}
	def := quota.Entity{ClientPart: quota.Default}
	s := NewState(nil, nil)
	ents := []*pb.Entry{
		entry(1, &Command{Op: OpAlterClientQuotas, Quotas: []QuotaAlteration{
			{Entity: alice, Set: map[string]float64{quota.ProducerByteRate: 1024, quota.RequestPercentage: 50}},
			{Entity: def, Set: map[string]float64{quota.ConsumerByteRate: 2048}},
		}}),
		// Invalid: nothing of it applies, not even the valid first part.
		entry(2, &Command{Op: OpAlterClientQuotas, Quotas: []QuotaAlteration{
			{Entity: alice, Set: map[string]float64{quota.ProducerByteRate: 1}},
			{Entity: def, Set: map[string]float64{"nonsense": 1}},
		}}),
		entry(3, &Command{Op: OpAlterClientQuotas, Quotas: []QuotaAlteration{{Entity: quota.Entity{}, Set: map[string]float64{quota.ProducerByteRate: 1}}}}),
		entry(4, &Command{Op: OpAlterClientQuotas, Quotas: []QuotaAlteration{{Entity: alice, Remove: []string{quota.RequestPercentage}}, {Entity: def, Remove: []string{quota.ConsumerByteRate}}}}),
	}
	if err := s.Apply(ents); err != nil {
		t.Fatal(err)
	}
	for i, w := range map[uint64]error{1: nil, 2: ErrInvalidConfig, 3: ErrInvalid, 4: nil} {
		if got := s.Result(i); !errors.Is(got, w) || (w == nil) != (got == nil) {
			t.Fatalf("entry %d: %v, want %v", i, got, w)
		}
	}
	q := s.Quotas()
	if len(q) != 1 || len(q[alice]) != 1 || q[alice][quota.ProducerByteRate] != 1024 {
		t.Fatalf("quotas %v", q)
	}
}

// TestAwaitFindsTheOutcomeByID: a node that forwarded a command learns its
// outcome from its own Apply, by the command's id.
func TestAwaitFindsTheOutcomeByID(t *testing.T) {
	s := NewState(nil, nil)
	ok, forgetOK := s.Await("a")
	defer forgetOK()
	dup, forgetDup := s.Await("b")
	defer forgetDup()
	gone, forget := s.Await("c")
	forget() // gave up: nothing is delivered
	if err := s.Apply([]*pb.Entry{
		entry(1, &Command{ID: "a", Op: OpCreateTopic, Topic: "t", Replicas: [][]int32{{1}}}),
		entry(2, &Command{ID: "b", Op: OpCreateTopic, Topic: "t", Replicas: [][]int32{{1}}}),
		entry(3, &Command{ID: "c", Op: OpDeleteTopic, Topic: "t"}),
	}); err != nil {
		t.Fatal(err)
	}
	if o := <-ok; o.Index != 1 || o.Err != nil {
		t.Fatalf("outcome of a: %+v", o)
	}
	if o := <-dup; o.Index != 2 || !errors.Is(o.Err, ErrTopicExists) {
		t.Fatalf("outcome of b: %+v, want TopicExists at 2", o)
	}
	select {
	case o := <-gone:
		t.Fatalf("a forgotten wait received %+v", o)
	default:
	}
}

// TestPartitionLeaderRecords: the newest epoch wins, stale reports and
// reports for a recreated topic of the same name are ignored.
func TestPartitionLeaderRecords(t *testing.T) {
	s := NewState(nil, nil)
	id := [16]byte{1}
	if err := s.Apply([]*pb.Entry{
		entry(1, &Command{Op: OpCreateTopic, Topic: "t", TopicID: id, Replicas: [][]int32{{1, 2, 3}, {2, 3, 1}}}),
		entry(2, &Command{Op: OpPartitionLeader, Topic: "t", TopicID: id, Partition: 1, Leader: 2, Epoch: 1}),
		entry(3, &Command{Op: OpPartitionLeader, Topic: "t", TopicID: id, Partition: 1, Leader: 3, Epoch: 3}),
		entry(4, &Command{Op: OpPartitionLeader, Topic: "t", TopicID: id, Partition: 1, Leader: 1, Epoch: 2}),
		entry(5, &Command{Op: OpPartitionLeader, Topic: "t", TopicID: [16]byte{9}, Partition: 0, Leader: 1, Epoch: 7}),
	}); err != nil {
		t.Fatal(err)
	}
	tp, _ := s.Topic("t")
	if p := tp.Partitions[1]; p.Leader != 3 || p.Epoch != 3 {
		t.Fatalf("partition 1 leader %d epoch %d, want 3 and 3", p.Leader, p.Epoch)
	}
	if p := tp.Partitions[0]; p.Epoch != 0 {
		t.Fatalf("a report for another topic id changed partition 0: %+v", p)
	}
	if !errors.Is(s.Result(5), ErrUnknownTopic) {
		t.Fatalf("report for a recreated topic: %v", s.Result(5))
	}
}
