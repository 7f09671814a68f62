package broker_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/testbroker"
)

// idemBatch builds a one-record batch of an idempotent producer.
func idemBatch(pid int64, epoch int16, seq int32) []byte {
	b := records.Build(0, time.Now().UnixMilli(), []records.Record{{Value: []byte{byte(seq)}}})
	binary.BigEndian.PutUint64(b[43:], uint64(pid))
	binary.BigEndian.PutUint16(b[51:], uint16(epoch))
	binary.BigEndian.PutUint32(b[53:], uint32(seq))
	records.SetCRC(b)
	return b
}

func produceRaw(t *testing.T, cl *kgo.Client, topic string, id [16]byte, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, TopicID: id, Partitions: []kmsg.ProduceRequestTopicPartition{{Records: batch}}}}
	// Right after a restart the partition may not be led yet: retry the
	// retriable answers, as a client does.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := req.RequestWith(ctxT(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		code := p.ErrorCode
		if (code != kerr.NotLeaderForPartition.Code && code != kerr.LeaderNotAvailable.Code) || time.Now().After(deadline) {
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdempotenceSurvivesRestart: the producer state is rebuilt after a
// restart — from its snapshot, and from the log alone when the snapshot is
// gone — so a retry is still recognised as a duplicate.
func TestIdempotenceSurvivesRestart(t *testing.T) {
	for _, loseSnapshot := range []bool{false, true} {
		dir := t.TempDir()
		cfg := testbroker.Config(dir)
		b := testbroker.Start(t, cfg)
		createTopic(t, kadm.NewClient(client(t, b.Addr)), "ir", 1, nil)
		cl := client(t, b.Addr)
		id := topicID(t, kadm.NewClient(cl), "ir")
		pid := int64(4242)
		for seq := int32(0); seq < 3; seq++ {
			if r := produceRaw(t, cl, "ir", id, idemBatch(pid, 0, seq)); r.ErrorCode != 0 || r.BaseOffset != int64(seq) {
				t.Fatalf("seq %d: %+v", seq, r)
			}
		}
		if err := b.Stop(); err != nil {
			t.Fatal(err)
		}
		if loseSnapshot {
			if err := os.Remove(filepath.Join(dir, "logs", "ir-0", "producers")); err != nil {
				t.Fatal(err)
			}
		}
		cfg.Bind = b.Addr // same address, so the client finds it again
		cfg.Advertise = b.Addr
		b = testbroker.Start(t, cfg)
		cl = client(t, b.Addr)
		if r := produceRaw(t, cl, "ir", id, idemBatch(pid, 0, 2)); r.ErrorCode != 0 || r.BaseOffset != 2 {
			t.Fatalf("retry after restart (snapshot lost: %v): %+v, want the original offset 2", loseSnapshot, r)
		}
		if r := produceRaw(t, cl, "ir", id, idemBatch(pid, 0, 4)); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
			t.Fatalf("gap after restart: %+v", r)
		}
		if r := produceRaw(t, cl, "ir", id, idemBatch(pid, 0, 3)); r.ErrorCode != 0 || r.BaseOffset != 3 {
			t.Fatalf("next after restart: %+v", r)
		}
	}
}

func TestFetchSessionsRefusedAndDeleteByID(t *testing.T) {
	b := testbroker.Start(t, nil)
	cl := client(t, b.Addr)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "fs", 1, nil)
	id := topicID(t, adm, "fs")
	fetch := func(session, epoch int32) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.SessionID, req.SessionEpoch, req.MaxBytes = session, epoch, 1<<20
		req.Topics = []kmsg.FetchRequestTopic{{Topic: "fs", TopicID: id, Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}}}
		resp, err := req.RequestWith(ctxT(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := fetch(0, 0); r.ErrorCode != 0 || r.SessionID != 0 {
		t.Fatalf("a new session is refused by answering session 0 (full fetches go on): %+v", r)
	}
	if r := fetch(77, 3); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("incremental fetch of an unknown session: error %d", r.ErrorCode)
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.Topics = []kmsg.DeleteTopicsRequestTopic{{TopicID: id}, {TopicID: [16]byte{9}}}
	resp, err := del.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Topics[0].ErrorCode != 0 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != "fs" || resp.Topics[1].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("delete by id: %+v", resp.Topics)
	}
}

func TestOffsetForLeaderEpochAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := testbroker.Config(dir)
	b := testbroker.Start(t, cfg)
	createTopic(t, kadm.NewClient(client(t, b.Addr)), "ep", 1, nil)
	produceN := func(addr string, n int) {
		cl := client(t, addr, kgo.DefaultProduceTopic("ep"))
		for range n {
			if err := cl.ProduceSync(ctxT(t), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produceN(b.Addr, 5) // epoch 1: offsets 0-4
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	cfg.Bind, cfg.Advertise = b.Addr, b.Addr
	b = testbroker.Start(t, cfg)
	produceN(b.Addr, 3) // epoch 2: offsets 5-7
	cl := client(t, b.Addr)
	query := func(epoch int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = -1
		req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "ep", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: epoch}}}}
		resp, err := req.RequestWith(ctxT(t), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0]
	}
	if r := query(1); r.ErrorCode != 0 || r.LeaderEpoch != 1 || r.EndOffset != 5 {
		t.Fatalf("epoch 1 ends at 5: %+v", r)
	}
	if r := query(2); r.ErrorCode != 0 || r.LeaderEpoch != 2 || r.EndOffset != 8 {
		t.Fatalf("epoch 2 (current) ends at the log end 8: %+v", r)
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	resp, err := dc.RequestWith(ctxT(t), cl)
	if err != nil || resp.ErrorCode != 0 || resp.ClusterID == "" || resp.ControllerID != 1 || len(resp.Brokers) != 1 || resp.Brokers[0].Host != "127.0.0.1" {
		t.Fatalf("describe cluster: %v %+v", err, resp)
	}
}

// TestMinInsyncReplicasRefusesAcksAll: with fewer in-sync replicas than the
// topic's min.insync.replicas (here one replica, min 2), an acks=all produce
// is refused with NOT_ENOUGH_REPLICAS before anything is appended, acks=1 is
// served, and lowering the setting serves acks=all again — as Kafka does.
func TestMinInsyncReplicasRefusesAcksAll(t *testing.T) {
	b := testbroker.Start(t, testbroker.Config(t.TempDir()))
	cl := client(t, b.Addr)
	adm := kadm.NewClient(cl)
	two := "2"
	createTopic(t, adm, "isr", 1, map[string]*string{"min.insync.replicas": &two})
	id := topicID(t, adm, "isr")
	if r := produceRaw(t, cl, "isr", id, records.Build(0, time.Now().UnixMilli(), []records.Record{{Value: []byte("a")}})); r.ErrorCode != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with 1 of 2 in-sync replicas: %+v, want NOT_ENOUGH_REPLICAS", r)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = 1, 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "isr", TopicID: id, Partitions: []kmsg.ProduceRequestTopicPartition{{Records: records.Build(0, time.Now().UnixMilli(), []records.Record{{Value: []byte("b")}})}}}}
	// kgo sends produce requests with the client's acks setting.
	leaderAcks := client(t, b.Addr, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	resp, err := req.RequestWith(ctxT(t), leaderAcks)
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 || resp.Topics[0].Partitions[0].BaseOffset != 0 {
		t.Fatalf("acks=1: %+v %v (the refused acks=all batch must not have taken an offset)", resp, err)
	}
	one := "1"
	if _, err := adm.AlterTopicConfigs(ctxT(t), []kadm.AlterConfig{{Name: "min.insync.replicas", Value: &one}}, "isr"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := produceRaw(t, cl, "isr", id, records.Build(0, time.Now().UnixMilli(), []records.Record{{Value: []byte("c")}}))
		if r.ErrorCode == 0 {
			if r.BaseOffset != 1 {
				t.Fatalf("acks=all after lowering min.insync.replicas: offset %d, want 1", r.BaseOffset)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acks=all still refused after min.insync.replicas=1: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
