package broker_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/testbroker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// topicID returns a topic's id (requests from v13 of Produce and Fetch
// name topics by id).
func topicID(t *testing.T, adm *kadm.Client, topic string) [16]byte {
	t.Helper()
	md, err := adm.Metadata(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	return md.Topics[topic].ID
}

func createTopic(t *testing.T, adm *kadm.Client, name string, partitions int32, cfg map[string]*string) {
	t.Helper()
	r, err := adm.CreateTopic(ctxT(t), partitions, 1, cfg, name)
	if err != nil || r.Err != nil {
		t.Fatalf("create topic %s: %v %v", name, err, r.Err)
	}
}

// consumeAll reads n records of topic from the start.
func consumeAll(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	var out []*kgo.Record
	ctx := ctxT(t)
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, err)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s[%d]: %v", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func TestProduceConsumeEveryCodec(t *testing.T) {
	b := testbroker.Start(t, nil)
	adm := kadm.NewClient(client(t, b.Addr))
	codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			maxBytes := "2097152"
			createTopic(t, adm, topic, 3, map[string]*string{"max.message.bytes": &maxBytes})
			cl := client(t, b.Addr, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(10000),
				kgo.ProducerBatchMaxBytes(2<<20), kgo.BrokerMaxWriteBytes(4<<20))
			big := bytes.Repeat([]byte("x"), 1<<20) // a 1 MiB value
			var want []*kgo.Record
			for i := range 300 {
				r := &kgo.Record{Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte(fmt.Sprintf("value-%d", i)), Partition: int32(i % 3),
					Headers: []kgo.RecordHeader{{Key: "h", Value: []byte{byte(i)}}}}
				switch i {
				case 7:
					r.Value = nil // null value
				case 8:
					r.Key = nil
				case 9:
					r.Value = big // close to 1 MiB
				}
				want = append(want, r)
			}
			if err := cl.ProduceSync(ctxT(t), want...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			got := consumeAll(t, b.Addr, topic, len(want))
			byKey := map[string]*kgo.Record{}
			perPart := map[int32]int64{}
			for _, r := range got {
				if r.Offset != perPart[r.Partition] {
					t.Fatalf("partition %d: offset %d, want %d (offsets must be dense from 0)", r.Partition, r.Offset, perPart[r.Partition])
				}
				perPart[r.Partition]++
				byKey[string(r.Key)+"|"+fmt.Sprint(r.Headers[0].Value[0])] = r
			}
			for i, w := range want {
				g := byKey[string(w.Key)+"|"+fmt.Sprint(byte(i))]
				if g == nil {
					t.Fatalf("record %d missing", i)
				}
				if !bytes.Equal(g.Value, w.Value) || (w.Value == nil) != (g.Value == nil) || g.Partition != w.Partition || g.Offset != w.Offset {
					t.Fatalf("record %d differs: offset %d/%d partition %d/%d", i, g.Offset, w.Offset, g.Partition, w.Partition)
				}
			}
		})
	}
}

func TestIdempotentProducerSequences(t *testing.T) {
	b := testbroker.Start(t, nil)
	adm := kadm.NewClient(client(t, b.Addr))
	createTopic(t, adm, "idem", 1, nil)
	cl := client(t, b.Addr)
	ctx := ctxT(t)
	pid, err := (&kmsg.InitProducerIDRequest{TransactionalID: nil, ProducerID: -1, ProducerEpoch: -1}).RequestWith(ctx, cl)
	if err != nil || pid.ErrorCode != 0 {
		t.Fatalf("init producer id: %v %d", err, pid.ErrorCode)
	}
	produce := func(seq int32, epoch int16, n int) *kmsg.ProduceResponseTopicPartition {
		recs := make([]records.Record, n)
		for i := range recs {
			recs[i] = records.Record{Value: []byte(fmt.Sprint(seq + int32(i)))}
		}
		batch := records.Build(0, time.Now().UnixMilli(), recs)
		binary.BigEndian.PutUint64(batch[43:], uint64(pid.ProducerID))
		binary.BigEndian.PutUint16(batch[51:], uint16(epoch))
		binary.BigEndian.PutUint32(batch[53:], uint32(seq))
		records.SetCRC(batch)
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "idem", TopicID: topicID(t, adm, "idem"), Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return &resp.Topics[0].Partitions[0]
	}
	if r := produce(0, pid.ProducerEpoch, 3); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("first batch: %+v", r)
	}
	if r := produce(3, pid.ProducerEpoch, 2); r.ErrorCode != 0 || r.BaseOffset != 3 {
		t.Fatalf("second batch: %+v", r)
	}
	// A retry of the first batch is a duplicate: the original offset, no append.
	if r := produce(0, pid.ProducerEpoch, 3); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("duplicate: %+v", r)
	}
	if r := produce(9, pid.ProducerEpoch, 1); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap in sequence: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", r.ErrorCode)
	}
	// A bumped epoch fences the old one.
	if r := produce(0, pid.ProducerEpoch+1, 1); r.ErrorCode != 0 || r.BaseOffset != 5 {
		t.Fatalf("new epoch: %+v", r)
	}
	if r := produce(5, pid.ProducerEpoch, 1); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("old epoch: error %d, want INVALID_PRODUCER_EPOCH", r.ErrorCode)
	}
	end, err := adm.ListEndOffsets(ctx, "idem")
	if err != nil || end["idem"][0].Offset != 6 {
		t.Fatalf("end offset %v %v, want 6 (the duplicate must not be appended)", end["idem"][0].Offset, err)
	}
}

// rawConn speaks the wire protocol directly, to send what clients never do.
type rawConn struct {
	net.Conn
	corr int32
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c}
}

func (c *rawConn) send(t *testing.T, req kmsg.Request, version int16) int32 {
	t.Helper()
	req.SetVersion(version)
	c.corr++
	var fr kmsg.RequestFormatter
	b := fr.AppendRequest(nil, req, c.corr)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c.corr
}

// recv reads one response frame and returns its correlation id and body.
func (c *rawConn) recv(t *testing.T) (int32, []byte, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sz [4]byte
	if _, err := io.ReadFull(c, sz[:]); err != nil {
		return 0, nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:], nil
}

func TestAcksZeroGetsNoResponse(t *testing.T) {
	b := testbroker.Start(t, nil)
	createTopic(t, kadm.NewClient(client(t, b.Addr)), "a0", 1, nil)
	c := dial(t, b.Addr)
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = 0, 1000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "a0", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: records.Build(0, 1, []records.Record{{Value: []byte("x")}})}}}}
	c.send(t, req, 9)
	corr := c.send(t, kmsg.NewPtrApiVersionsRequest(), 0)
	got, _, err := c.recv(t)
	if err != nil || got != corr {
		t.Fatalf("first response has correlation id %d (%v); want the ApiVersions one (%d): acks=0 must not be answered", got, err, corr)
	}
}

func TestBadRequestsCloseOnlyTheirConnection(t *testing.T) {
	b := testbroker.Start(t, nil)
	createTopic(t, kadm.NewClient(client(t, b.Addr)), "steady", 1, nil)
	// A producer keeps producing on its own connection the whole time.
	stop := make(chan struct{})
	var produced, failed int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := client(t, b.Addr, kgo.DefaultProduceTopic("steady"))
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
				failed++
			} else {
				produced++
			}
		}
	}()
	cases := []struct {
		name string
		raw  []byte
	}{
		{"unknown api key", frame(append(be16(999), append(be16(0), append(be32(1), be16(-1)...)...)...))},
		{"unsupported metadata version", frame(append(be16(3), append(be16(99), append(be32(1), be16(-1)...)...)...))},
		{"truncated body", frame(append(be16(3), append(be16(12), append(be32(1), append(be16(-1), 0x00)...)...)...))},
		{"garbage", frame([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})},
		{"oversized frame", be32(200 << 20)},
		{"negative size", be32(-5)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, b.Addr)
			if _, err := c.Write(tc.raw); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.recv(t); err == nil {
				t.Fatal("the broker answered instead of closing the connection")
			} else if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatal("the broker neither answered nor closed the connection")
			}
		})
	}
	t.Run("unsupported ApiVersions version", func(t *testing.T) {
		c := dial(t, b.Addr)
		corr := c.send(t, kmsg.NewPtrApiVersionsRequest(), 0)
		// Rewrite the version in the frame we would send: v99.
		raw := frame(append(be16(18), append(be16(99), append(be32(corr+1), be16(-1)...)...)...))
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			got, body, err := c.recv(t)
			if err != nil {
				t.Fatal(err)
			}
			if got == corr+1 {
				resp := kmsg.NewPtrApiVersionsResponse()
				resp.SetVersion(0)
				if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
					t.Fatalf("want UNSUPPORTED_VERSION with the version table: %v %+v", err, resp)
				}
			}
		}
	})
	close(stop)
	wg.Wait()
	if failed > 0 || produced == 0 {
		t.Fatalf("the steady producer had %d failures and %d successes", failed, produced)
	}
}

func frame(b []byte) []byte { return append(be32(int32(len(b))), b...) }
func be16(v int16) []byte   { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v int32) []byte   { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

func TestFetchLongPollWakesOnProduce(t *testing.T) {
	b := testbroker.Start(t, nil)
	createTopic(t, kadm.NewClient(client(t, b.Addr)), "lp", 1, nil)
	cl := client(t, b.Addr)
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = 10_000, 1, 1<<20, -1
	req.Topics = []kmsg.FetchRequestTopic{{Topic: "lp", TopicID: topicID(t, kadm.NewClient(cl), "lp"), Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}}}
	start := time.Now()
	done := make(chan *kmsg.FetchResponse, 1)
	go func() {
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	time.Sleep(300 * time.Millisecond)
	if err := client(t, b.Addr, kgo.DefaultProduceTopic("lp")).ProduceSync(ctxT(t), &kgo.Record{Value: []byte("wake")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	resp := <-done
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("long poll returned after %v; it must return when data arrives", took)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) == 0 || p.HighWatermark != 1 {
		t.Fatalf("fetch: error %d, %d bytes, hw %d", p.ErrorCode, len(p.RecordBatches), p.HighWatermark)
	}
	// An offset beyond the end is OFFSET_OUT_OF_RANGE, with the log start.
	req.Topics[0].Partitions[0].FetchOffset = 5
	req.MaxWaitMillis = 0
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch beyond end: %v %+v", err, resp)
	}
}

func TestListOffsetsAndDeleteRecords(t *testing.T) {
	b := testbroker.Start(t, nil)
	adm := kadm.NewClient(client(t, b.Addr))
	createTopic(t, adm, "lo", 1, nil)
	cl := client(t, b.Addr, kgo.DefaultProduceTopic("lo"), kgo.ProducerLinger(0))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 10 {
		ts := base.Add(time.Duration(i) * time.Minute)
		if i == 6 {
			ts = base.Add(3 * time.Hour) // the largest timestamp, in the middle
		}
		if err := cl.ProduceSync(ctxT(t), &kgo.Record{Value: []byte{byte(i)}, Timestamp: ts}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxT(t)
	check := func(what string, got kadm.ListedOffsets, err error, want int64) {
		t.Helper()
		o, ok := got.Lookup("lo", 0)
		if err != nil || !ok || o.Err != nil || o.Offset != want {
			t.Fatalf("%s: %+v %v, want offset %d", what, o, err, want)
		}
	}
	s, err := adm.ListStartOffsets(ctx, "lo")
	check("earliest", s, err, 0)
	e, err := adm.ListEndOffsets(ctx, "lo")
	check("latest", e, err, 10)
	m, err := adm.ListMaxTimestampOffsets(ctx, "lo")
	check("max timestamp", m, err, 6)
	a, err := adm.ListOffsetsAfterMilli(ctx, base.Add(150*time.Second).UnixMilli(), "lo")
	check("by timestamp", a, err, 3)
	// DeleteRecords moves the start; reads below it are out of range.
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "lo", Partition: 0, At: 4})
	dr, err := adm.DeleteRecords(ctx, os)
	if err != nil || dr.Error() != nil {
		t.Fatalf("delete records: %v %v", err, dr.Error())
	}
	if r, _ := dr.Lookup("lo", 0); r.LowWatermark != 4 {
		t.Fatalf("low watermark %d, want 4", r.LowWatermark)
	}
	s, err = adm.ListStartOffsets(ctx, "lo")
	check("earliest after delete", s, err, 4)
}

func TestAdminTopicsAndConfigs(t *testing.T) {
	b := testbroker.Start(t, nil)
	adm := kadm.NewClient(client(t, b.Addr))
	ctx := ctxT(t)
	ret := "3600000"
	// validate_only creates nothing.
	vr, err := adm.ValidateCreateTopics(ctx, 2, 1, map[string]*string{"retention.ms": &ret}, "v")
	if err != nil || vr.Error() != nil {
		t.Fatalf("validate: %v %v", err, vr.Error())
	}
	if md, _ := adm.ListTopics(ctx); md.Has("v") {
		t.Fatal("validate_only created the topic")
	}
	createTopic(t, adm, "cfg", 2, map[string]*string{"retention.ms": &ret})
	r, _ := adm.CreateTopic(ctx, 1, 1, nil, "cfg")
	if !errors.Is(r.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("second create: %v", r.Err)
	}
	bad := "-7"
	r, _ = adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &bad}, "bad")
	if !errors.Is(r.Err, kerr.InvalidConfig) {
		t.Fatalf("bad config: %v", r.Err)
	}
	r, _ = adm.CreateTopic(ctx, 1, 3, nil, "rf3")
	if !errors.Is(r.Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("rf 3 on one broker: %v", r.Err)
	}
	r, _ = adm.CreateTopic(ctx, 1, 1, nil, "bad/name")
	if !errors.Is(r.Err, kerr.InvalidTopicException) {
		t.Fatalf("bad name: %v", r.Err)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range rc[0].Configs {
		if c.Key == "retention.ms" {
			found = *c.Value == ret && c.Source == kmsg.ConfigSourceDynamicTopicConfig
		}
	}
	if !found {
		t.Fatalf("retention.ms not described as the topic override: %+v", rc[0].Configs)
	}
	set := "LogAppendTime"
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "message.timestamp.type", Value: &set}, {Name: "retention.ms", Op: kadm.DeleteConfig}}, "cfg")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("incremental alter: %v %v", err, ar)
	}
	ar, _ = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "no.such.config", Value: &set}}, "cfg")
	if !errors.Is(ar[0].Err, kerr.InvalidConfig) {
		t.Fatalf("unknown config: %v", ar[0].Err)
	}
	// LogAppendTime now applies to new batches.
	cl := client(t, b.Addr, kgo.DefaultProduceTopic("cfg"))
	old := time.Unix(1000, 0)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("t"), Timestamp: old, Partition: 0}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := consumeAll(t, b.Addr, "cfg", 1)[0]
	if got.Timestamp.Before(time.Now().Add(-time.Minute)) || got.Attrs.TimestampType() != 1 {
		t.Fatalf("timestamp %v type %d: LogAppendTime not applied", got.Timestamp, got.Attrs.TimestampType())
	}
	cp, err := adm.UpdatePartitions(ctx, 4, "cfg")
	if err != nil || cp.Error() != nil {
		t.Fatalf("create partitions: %v %v", err, cp.Error())
	}
	cp, _ = adm.UpdatePartitions(ctx, 3, "cfg")
	if !errors.Is(cp.Error(), kerr.InvalidPartitions) {
		t.Fatalf("shrinking partitions: %v", cp.Error())
	}
	md, err := adm.Metadata(ctx, "cfg")
	if err != nil || len(md.Topics["cfg"].Partitions) != 4 {
		t.Fatalf("metadata after create partitions: %v %+v", err, md.Topics["cfg"])
	}
	// Broker configs: dynamic ones change, static ones refuse.
	np := "5"
	br, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "num.partitions", Value: &np}})
	if err != nil || br[0].Err != nil {
		t.Fatalf("alter broker config: %v %v", err, br)
	}
	br, _ = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "broker.id", Value: &np}})
	if !errors.Is(br[0].Err, kerr.InvalidConfig) {
		t.Fatalf("static broker config: %v", br[0].Err)
	}
	if err := client(t, b.Addr, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("auto")).ProduceSync(ctx, &kgo.Record{Value: []byte("a")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if md, _ := adm.Metadata(ctx, "auto"); len(md.Topics["auto"].Partitions) != 5 {
		t.Fatalf("auto-created topic has %d partitions, want num.partitions=5", len(md.Topics["auto"].Partitions))
	}
	dc, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil || len(dc[1]) != 1 {
		t.Fatalf("describe log dirs: %v %+v", err, dc)
	}
	for _, d := range dc[1] {
		if d.Err != nil || d.Size() == 0 {
			t.Fatalf("log dir %s: %v, size %d", d.Dir, d.Err, d.Size())
		}
	}
	cluster, err := adm.BrokerMetadata(ctx)
	if err != nil || cluster.Cluster == "" || cluster.Controller != 1 || len(cluster.Brokers) != 1 {
		t.Fatalf("cluster: %v %+v", err, cluster)
	}
	dr, err := adm.DeleteTopics(ctx, "cfg", "nope")
	if err != nil {
		t.Fatal(err)
	}

	if dr["cfg"].Err != nil || !errors.Is(dr["nope"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete: %+v", dr)
	}
	// A fresh client: kgo answers metadata from its cache for a while.
	if md, _ := kadm.NewClient(client(t, b.Addr)).ListTopics(ctx); md.Has("cfg") {
		t.Fatalf("deleted topic still listed: %+v", md["cfg"])
	}
}
