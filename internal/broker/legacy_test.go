package broker_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/testbroker"
)

// Kafka 3.9's old versions, served again after Kafka 4.0 dropped them
// (KIP-896): legacy message sets on produce and fetch, ListOffsets v0, and
// version 0 of the admin APIs. Requests are raw kmsg requests at the exact
// version an old client sends.

// brokerWithTopic starts a broker with one topic and returns it with an
// admin client.
func brokerWithTopic(t *testing.T, topic string, partitions int32, cfg map[string]*string) (*testbroker.Broker, *kadm.Client) {
	t.Helper()
	b := testbroker.Start(t, nil)
	adm := kadm.NewClient(client(t, b.Addr))
	createTopic(t, adm, topic, partitions, cfg)
	return b, adm
}

// roundTrip sends req at version on c and decodes the response into resp.
func roundTrip(t *testing.T, c *rawConn, req kmsg.Request, version int16, resp kmsg.Response) {
	t.Helper()
	corr := c.send(t, req, version)
	got, body, err := c.recv(t)
	if err != nil || got != corr {
		t.Fatalf("%s v%d: response %d (want %d): %v", kmsg.NameForKey(req.Key()), version, got, corr, err)
	}
	resp.SetVersion(version)
	if resp.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
		body = body[1:] // the response header's empty tag section
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("%s v%d response: %v", kmsg.NameForKey(req.Key()), version, err)
	}
}

// legacyMessage encodes one message of magic 0 or 1 with kmsg, CRC set.
func legacyMessage(magic int8, offset int64, attrs int8, ts int64, key, value []byte) []byte {
	var b []byte
	if magic == 0 {
		m := kmsg.MessageV0{Offset: offset, Attributes: attrs, Key: key, Value: value}
		b = m.AppendTo(nil)
	} else {
		m := kmsg.MessageV1{Offset: offset, Magic: 1, Attributes: attrs, Timestamp: ts, Key: key, Value: value}
		b = m.AppendTo(nil)
	}
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[12:], crc32.ChecksumIEEE(b[16:]))
	return b
}

// legacySet is n messages "<tag>-i" (keys on even i), compressed in one
// wrapper when codec is not 0.
func legacySet(t *testing.T, magic, codec int8, tag string, n int, ts int64) []byte {
	t.Helper()
	var set []byte
	for i := range n {
		var key []byte
		if i%2 == 0 {
			key = []byte(fmt.Sprintf("%s-k%d", tag, i))
		}
		set = append(set, legacyMessage(magic, int64(i), 0, ts+int64(i), key, []byte(fmt.Sprintf("%s-%d", tag, i)))...)
	}
	if codec == 0 {
		return set
	}
	z, err := records.Compress(codec, set)
	if err != nil {
		t.Fatal(err)
	}
	return legacyMessage(magic, int64(n-1), codec, ts+int64(n-1), nil, z)
}

func produceReq(topic string, set []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = set
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func produceLegacy(t *testing.T, c *rawConn, version int16, topic string, set []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	resp := kmsg.NewPtrProduceResponse()
	roundTrip(t, c, produceReq(topic, set), version, resp)
	return resp.Topics[0].Partitions[0]
}

// legacyMsg is a message as an old fetcher sees it.
type legacyMsg struct {
	Offset, Timestamp int64
	Key, Value        string
}

// parseFetched reads a v0/v1 message set (opening compressed wrappers) the
// way old clients do, with kmsg's decoders.
func parseFetched(t *testing.T, b []byte, magic int8) []legacyMsg {
	t.Helper()
	var out []legacyMsg
	for len(b) > 0 {
		size := int(binary.BigEndian.Uint32(b[8:]))
		m := b[:12+size]
		b = b[12+size:]
		if crc32.ChecksumIEEE(m[16:]) != binary.BigEndian.Uint32(m[12:]) {
			t.Fatalf("fetched message with a bad crc")
		}
		if int8(m[16]) != magic {
			t.Fatalf("fetched magic %d, want %d", m[16], magic)
		}
		var lm legacyMsg
		var attrs int8
		var value []byte
		if magic == 0 {
			var km kmsg.MessageV0
			if err := km.ReadFrom(m); err != nil {
				t.Fatal(err)
			}
			lm, attrs, value = legacyMsg{km.Offset, -1, string(km.Key), string(km.Value)}, km.Attributes, km.Value
		} else {
			var km kmsg.MessageV1
			if err := km.ReadFrom(m); err != nil {
				t.Fatal(err)
			}
			lm, attrs, value = legacyMsg{km.Offset, km.Timestamp, string(km.Key), string(km.Value)}, km.Attributes, km.Value
		}
		if codec := attrs & 7; codec != 0 {
			plain, err := records.DecompressLegacy(magic, codec, value)
			if err != nil {
				t.Fatal(err)
			}
			inner := parseFetched(t, plain, magic)
			if magic == 1 {
				last := inner[len(inner)-1].Offset
				for i := range inner {
					inner[i].Offset = lm.Offset - last + inner[i].Offset
				}
			}
			out = append(out, inner...)
			continue
		}
		out = append(out, lm)
	}
	return out
}

func fetchLegacy(t *testing.T, c *rawConn, version int16, topic string, offset int64) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes = 100, 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes = offset, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := kmsg.NewPtrFetchResponse()
	roundTrip(t, c, req, version, resp)
	return resp.Topics[0].Partitions[0]
}

// TestLegacyMessageSetsProduceAndFetch: Produce v0–v2 with magic 0 and 1
// message sets, plain and compressed, are stored as v2 batches that a
// current client reads with the same keys, values, timestamps (none for
// v0) and consecutive offsets; Fetch v0–v3 give them back as message sets
// of the magic each version expects, at the same offsets.
func TestLegacyMessageSetsProduceAndFetch(t *testing.T) {
	b, _ := brokerWithTopic(t, "legacy", 1, nil)
	c := dial(t, b.Addr)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	type step struct {
		version      int16
		magic, codec int8
		tag          string
	}
	steps := []step{{0, 0, 0, "v0-plain"}, {1, 0, records.CodecGzip, "v0-gzip"}, {2, 1, 0, "v1-plain"},
		{2, 1, records.CodecSnappy, "v1-snappy"}, {2, 1, records.CodecLZ4, "v1-lz4"}, {1, 0, records.CodecSnappy, "v0-snappy"}}
	const n = 4
	var want []legacyMsg
	for i, s := range steps {
		rp := produceLegacy(t, c, s.version, "legacy", legacySet(t, s.magic, s.codec, s.tag, n, ts))
		if rp.ErrorCode != 0 || rp.BaseOffset != int64(i*n) {
			t.Fatalf("produce v%d of %s: error %v, base offset %d, want %d", s.version, s.tag, kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset, i*n)
		}
		for j := range n {
			m := legacyMsg{Offset: int64(i*n + j), Timestamp: -1, Value: fmt.Sprintf("%s-%d", s.tag, j)}
			if s.magic == 1 {
				m.Timestamp = ts + int64(j)
			}
			if j%2 == 0 {
				m.Key = fmt.Sprintf("%s-k%d", s.tag, j)
			}
			want = append(want, m)
		}
	}
	// A current client reads v2 batches.
	got := consumeAll(t, b.Addr, "legacy", len(want))
	for i, r := range got {
		w := want[i]
		if r.Offset != w.Offset || string(r.Key) != w.Key || string(r.Value) != w.Value || (w.Key == "") != (r.Key == nil) {
			t.Fatalf("record %d read by franz-go: offset %d key %q value %q, want %+v", i, r.Offset, r.Key, r.Value, w)
		}
		if w.Timestamp >= 0 && r.Timestamp.UnixMilli() != w.Timestamp {
			t.Fatalf("record %d: timestamp %d, want %d", i, r.Timestamp.UnixMilli(), w.Timestamp)
		}
	}
	// Old fetchers read message sets of their magic, from any offset.
	for version := range int16(4) {
		magic := int8(0)
		if version >= 2 {
			magic = 1
		}
		for _, from := range []int64{0, 6} {
			var msgs []legacyMsg
			for off := from; off < int64(len(want)); {
				fp := fetchLegacy(t, c, version, "legacy", off)
				if fp.ErrorCode != 0 || fp.HighWatermark != int64(len(want)) {
					t.Fatalf("fetch v%d at %d: error %v, high watermark %d", version, off, kerr.ErrorForCode(fp.ErrorCode), fp.HighWatermark)
				}
				page := parseFetched(t, fp.RecordBatches, magic)
				if len(page) == 0 {
					t.Fatalf("fetch v%d at %d: nothing", version, off)
				}
				for _, m := range page {
					if m.Offset >= off { // a batch may start before the fetch offset
						msgs = append(msgs, m)
					}
				}
				off = page[len(page)-1].Offset + 1
			}
			wantFrom := slices.Clone(want[from:])
			if magic == 0 {
				for i := range wantFrom {
					wantFrom[i].Timestamp = -1
				}
			}
			if fmt.Sprint(msgs) != fmt.Sprint(wantFrom) {
				t.Fatalf("fetch v%d from %d:\n got %v\nwant %v", version, from, msgs, wantFrom)
			}
		}
	}
}

// TestLegacyBadInputRefusedAndBrokerServes: a damaged message set, a
// message set in Produce v3, zstd in message format v1 and a zstd batch
// asked for by Fetch v3 each get Kafka's error for the partition; nothing
// is stored and the connection and broker go on serving.
func TestLegacyBadInputRefusedAndBrokerServes(t *testing.T) {
	b, adm := brokerWithTopic(t, "bad", 1, nil)
	c := dial(t, b.Addr)
	good := legacySet(t, 1, 0, "ok", 2, 1000)
	badCRC := slices.Clone(good)
	badCRC[len(badCRC)-1] ^= 0xff
	for _, tc := range []struct {
		name    string
		version int16
		set     []byte
		want    *kerr.Error
	}{
		{"bad crc", 2, badCRC, kerr.CorruptMessage},
		{"truncated", 1, good[:len(good)-5], kerr.CorruptMessage},
		{"message set in produce v3", 3, good, kerr.InvalidRecord},
		{"zstd in format v1", 2, legacyMessage(1, 0, records.CodecZstd, 0, nil, []byte("zz")), kerr.UnsupportedCompressionType},
	} {
		rp := produceLegacy(t, c, tc.version, "bad", tc.set)
		if rp.ErrorCode != tc.want.Code {
			t.Fatalf("%s: error %v, want %v", tc.name, kerr.ErrorForCode(rp.ErrorCode), tc.want)
		}
	}
	if rp := produceLegacy(t, c, 2, "bad", good); rp.ErrorCode != 0 || rp.BaseOffset != 0 {
		t.Fatalf("good produce after the bad ones: %v at %d (nothing bad may be stored)", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}
	createTopic(t, adm, "zs", 1, nil)
	p := client(t, b.Addr, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "zs", Value: bytes.Repeat([]byte("zstd "), 400)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if fp := fetchLegacy(t, c, 3, "zs", 0); fp.ErrorCode != kerr.UnsupportedCompressionType.Code {
		t.Fatalf("fetch v3 of a zstd batch: %v (%d bytes, high watermark %d), want UNSUPPORTED_COMPRESSION_TYPE", kerr.ErrorForCode(fp.ErrorCode), len(fp.RecordBatches), fp.HighWatermark)
	}
	if fp := fetchLegacy(t, c, 2, "bad", 0); fp.ErrorCode != 0 || len(parseFetched(t, fp.RecordBatches, 1)) != 2 {
		t.Fatalf("fetch v2 after the errors: %v", kerr.ErrorForCode(fp.ErrorCode))
	}
}

// TestListOffsetsV0OffsetLists: ListOffsets v0 (Burrow, old consumers)
// answers lists of at most max_num_offsets offsets, largest first.
func TestListOffsetsV0OffsetLists(t *testing.T) {
	b, _ := brokerWithTopic(t, "lo0", 1, nil)
	c := dial(t, b.Addr)
	list := func(ts int64, maxNum int32) ([]int64, int16) {
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "lo0"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp, rp.MaxNumOffsets = ts, maxNum
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := kmsg.NewPtrListOffsetsResponse()
		roundTrip(t, c, req, 0, resp)
		p := resp.Topics[0].Partitions[0]
		return p.OldStyleOffsets, p.ErrorCode
	}
	if got, code := list(-1, 5); code != 0 || !slices.Equal(got, []int64{0}) {
		t.Fatalf("latest of an empty log: %v (error %d), want [0]", got, code)
	}
	old := time.Now().Add(-time.Hour)
	cl := client(t, b.Addr, kgo.DefaultProduceTopic("lo0"))
	for i := range 7 {
		if err := cl.ProduceSync(ctxT(t), &kgo.Record{Value: []byte{byte(i)}, Timestamp: old.Add(time.Duration(i) * time.Minute)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		ts     int64
		maxNum int32
		want   []int64
	}{
		{"latest, one offset (what Burrow asks)", -1, 1, []int64{7}},
		{"latest, several", -1, 10, []int64{7, 0}},
		{"earliest", -2, 10, []int64{0}},
		{"a time after some records", old.Add(150 * time.Second).UnixMilli(), 10, []int64{0}},
		{"a time before every record", old.Add(-time.Hour).UnixMilli(), 10, nil},
		{"the future", time.Now().Add(time.Hour).UnixMilli(), 10, []int64{7, 0}},
		{"none wanted", -1, 0, nil},
	} {
		got, code := list(tc.ts, tc.maxNum)
		if code != 0 || !slices.Equal(got, tc.want) {
			t.Fatalf("%s: %v (error %v), want %v", tc.name, got, kerr.ErrorForCode(code), tc.want)
		}
	}
}

// TestVersionZeroAdminAPIs: version 0 of CreateTopics, DescribeConfigs,
// OffsetCommit/OffsetFetch, OffsetForLeaderEpoch, DescribeLogDirs and
// DeleteTopics, as old admin tools send them.
func TestVersionZeroAdminAPIs(t *testing.T) {
	b := fastGroupBroker(t)
	c := dial(t, b.Addr)
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "old", 2, 1
	rt.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "retention.ms", Value: kmsg.StringPtr("1000000")}}
	ct.Topics = append(ct.Topics, rt)
	ctr := kmsg.NewPtrCreateTopicsResponse()
	roundTrip(t, c, ct, 0, ctr)
	code(t, "CreateTopics v0", ctr.Topics[0].ErrorCode, nil)

	dc := kmsg.NewPtrDescribeConfigsRequest()
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName, dr.ConfigNames = kmsg.ConfigResourceTypeTopic, "old", []string{"retention.ms", "cleanup.policy"}
	dc.Resources = append(dc.Resources, dr)
	dcr := kmsg.NewPtrDescribeConfigsResponse()
	roundTrip(t, c, dc, 0, dcr)
	code(t, "DescribeConfigs v0", dcr.Resources[0].ErrorCode, nil)
	seen := map[string]string{}
	for _, cfg := range dcr.Resources[0].Configs {
		seen[cfg.Name] = fmt.Sprintf("%s default=%v", *cfg.Value, cfg.IsDefault)
	}
	if seen["retention.ms"] != "1000000 default=false" || seen["cleanup.policy"] != "delete default=true" {
		t.Fatalf("DescribeConfigs v0: %v", seen)
	}

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "oldgroup"
	fcr := kmsg.NewPtrFindCoordinatorResponse()
	roundTrip(t, c, fc, 0, fcr)
	code(t, "FindCoordinator v0", fcr.ErrorCode, nil)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group = "oldgroup"
	oct := kmsg.NewOffsetCommitRequestTopic()
	oct.Topic = "old"
	oct.Partitions = []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: 0, Metadata: kmsg.StringPtr("m")}}
	oc.Topics = append(oc.Topics, oct)
	ocr := kmsg.NewPtrOffsetCommitResponse()
	// The coordinator may still be loading its partition: retry as
	// clients do.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		roundTrip(t, c, oc, 0, ocr)
		if ocr.Topics[0].Partitions[0].ErrorCode != kerr.CoordinatorLoadInProgress.Code || time.Now().After(deadline) {
			break
		}
	}
	code(t, "OffsetCommit v0", ocr.Topics[0].Partitions[0].ErrorCode, nil)
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = "oldgroup"
	of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "old", Partitions: []int32{0, 1}}}
	ofr := kmsg.NewPtrOffsetFetchResponse()
	roundTrip(t, c, of, 0, ofr)
	ps := ofr.Topics[0].Partitions
	if len(ps) != 2 || ps[0].Offset != -1 || ps[1].Offset != 0 || ps[1].ErrorCode != 0 {
		t.Fatalf("OffsetFetch v0: %+v, want -1 for partition 0 and 0 for partition 1", ps)
	}

	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	oet := kmsg.NewOffsetForLeaderEpochRequestTopic()
	oet.Topic = "old"
	oep := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	oep.LeaderEpoch = 1 << 20
	oet.Partitions = append(oet.Partitions, oep)
	oe.Topics = append(oe.Topics, oet)
	oer := kmsg.NewPtrOffsetForLeaderEpochResponse()
	roundTrip(t, c, oe, 0, oer)
	if p := oer.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.EndOffset != 0 {
		t.Fatalf("OffsetForLeaderEpoch v0: %+v, want the log end (0)", p)
	}

	dl := kmsg.NewPtrDescribeLogDirsRequest()
	dlr := kmsg.NewPtrDescribeLogDirsResponse()
	roundTrip(t, c, dl, 0, dlr)
	found := false
	for _, d := range dlr.Dirs {
		for _, tp := range d.Topics {
			found = found || tp.Topic == "old" && len(tp.Partitions) == 2
		}
	}
	if !found {
		t.Fatalf("DescribeLogDirs v0 does not list old's two partitions: %+v", dlr.Dirs)
	}

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TimeoutMillis, del.TopicNames = 10000, []string{"old"}
	delr := kmsg.NewPtrDeleteTopicsResponse()
	roundTrip(t, c, del, 0, delr)
	code(t, "DeleteTopics v0", delr.Topics[0].ErrorCode, nil)
}

// TestApiVersionsStartAtKafka39Minimums: every API Chronik serves is
// advertised from the oldest version Kafka 3.9 serves (0 for all of them),
// including the versions Kafka 4.0 removed (KIP-896).
func TestApiVersionsStartAtKafka39Minimums(t *testing.T) {
	b := testbroker.Start(t, nil)
	c := dial(t, b.Addr)
	resp := kmsg.NewPtrApiVersionsResponse()
	roundTrip(t, c, kmsg.NewPtrApiVersionsRequest(), 3, resp)
	if len(resp.ApiKeys) < 30 {
		t.Fatalf("only %d APIs advertised", len(resp.ApiKeys))
	}
	for _, k := range resp.ApiKeys {
		if k.MinVersion != 0 {
			t.Errorf("%s advertised from v%d; Kafka 3.9 serves it from v0", kmsg.NameForKey(k.ApiKey), k.MinVersion)
		}
	}
}
