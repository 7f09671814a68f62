package broker_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/testbroker"
)

// storedCodecs fetches a partition from offset 0 with Fetch v11 and
// returns the codec of each stored batch.
func storedCodecs(t *testing.T, c *rawConn, topic string) []int8 {
	t.Helper()
	fp := fetchLegacy(t, c, 11, topic, 0)
	if fp.ErrorCode != 0 {
		t.Fatalf("fetch %s: %v", topic, kerr.ErrorForCode(fp.ErrorCode))
	}
	var out []int8
	for b := fp.RecordBatches; len(b) > 0; {
		h, err := records.ReadHeader(b)
		if err != nil || records.CheckCRC(b, &h) != nil {
			t.Fatalf("stored batch: %v", err)
		}
		out = append(out, h.Compression())
		b = b[h.Size():]
	}
	return out
}

// TestTopicCompressionTypeRecompresses: a topic's compression.type other
// than producer makes the broker store every batch in that codec (gzip and
// uncompressed batches become lz4; lz4 ones stay as sent; "uncompressed"
// stores them plain), records intact; producer keeps each batch's codec.
// CreateTopics with compression.type=lz4 is accepted, as by Kafka.
func TestTopicCompressionTypeRecompresses(t *testing.T) {
	b := testbroker.Start(t, nil)
	adm := kadm.NewClient(client(t, b.Addr))
	c := dial(t, b.Addr)
	value := bytes.Repeat([]byte("compressible "), 100)
	for _, tc := range []struct {
		topic, ctype string
		want         []int8 // stored codec after a gzip, a plain and an lz4 batch
	}{
		{"ct-lz4", "lz4", []int8{records.CodecLZ4, records.CodecLZ4, records.CodecLZ4}},
		{"ct-plain", "uncompressed", []int8{records.CodecNone, records.CodecNone, records.CodecNone}},
		{"ct-zstd", "zstd", []int8{records.CodecZstd, records.CodecZstd, records.CodecZstd}},
		{"ct-producer", "producer", []int8{records.CodecGzip, records.CodecNone, records.CodecLZ4}},
	} {
		t.Run(tc.ctype, func(t *testing.T) {
			createTopic(t, adm, tc.topic, 1, map[string]*string{"compression.type": sp(tc.ctype)})
			for i, codec := range []kgo.CompressionCodec{kgo.GzipCompression(), kgo.NoCompression(), kgo.Lz4Compression()} {
				p := client(t, b.Addr, kgo.DefaultProduceTopic(tc.topic), kgo.ProducerBatchCompression(codec))
				if err := p.ProduceSync(ctxT(t), &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: value}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			if got := storedCodecs(t, c, tc.topic); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("stored codecs %v, want %v", got, tc.want)
			}
			for i, r := range consumeAll(t, b.Addr, tc.topic, 3) {
				if r.Offset != int64(i) || string(r.Key) != fmt.Sprint(i) || !bytes.Equal(r.Value, value) {
					t.Fatalf("record %d: offset %d key %q, value of %d bytes", i, r.Offset, r.Key, len(r.Value))
				}
			}
		})
	}
}

// TestMessageFormatVersionAcceptedAndIgnored: AlterConfigs with
// message.format.version (as librdkafka's tests send) is accepted and
// described, a malformed version is INVALID_CONFIG, and batches are
// still stored in format v2.
func TestMessageFormatVersionAcceptedAndIgnored(t *testing.T) {
	b, adm := brokerWithTopic(t, "mfv", 1, nil)
	r, err := adm.AlterTopicConfigsState(ctxT(t), []kadm.AlterConfig{{Name: "message.format.version", Value: sp("0.10.0")}}, "mfv")
	if err != nil || r[0].Err != nil {
		t.Fatalf("alter message.format.version: %v %v", err, r)
	}
	r, _ = adm.AlterTopicConfigsState(ctxT(t), []kadm.AlterConfig{{Name: "message.format.version", Value: sp("banana")}}, "mfv")
	if !errors.Is(r[0].Err, kerr.InvalidConfig) {
		t.Fatalf("message.format.version=banana: %v, want INVALID_CONFIG", r[0].Err)
	}
	rc, err := adm.DescribeTopicConfigs(ctxT(t), "mfv")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := rc.On("mfv", nil); err != nil || configValue(v.Configs, "message.format.version") != "0.10.0" {
		t.Fatalf("described: %v", err)
	}
	p := client(t, b.Addr, kgo.DefaultProduceTopic("mfv"))
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := storedCodecs(t, dial(t, b.Addr), "mfv"); len(got) != 1 {
		t.Fatalf("stored %d batches", len(got))
	}
}

func configValue(cs []kadm.Config, name string) string {
	for _, c := range cs {
		if c.Key == name && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}

// TestTimestampBoundsRefuseOutOfRangeRecords: with
// message.timestamp.difference.max.ms (or the before/after pair of Kafka
// 3.6+) a CreateTime record too far behind or ahead of the broker's clock
// is refused with INVALID_TIMESTAMP and not stored; records inside the
// bounds, and every record of a LogAppendTime topic, are stored.
func TestTimestampBoundsRefuseOutOfRangeRecords(t *testing.T) {
	b := testbroker.Start(t, nil)
	adm := kadm.NewClient(client(t, b.Addr))
	now := time.Now()
	for _, tc := range []struct {
		name string
		cfg  map[string]*string
		ts   time.Time
		want *kerr.Error
	}{
		{"difference: an hour old", map[string]*string{"message.timestamp.difference.max.ms": sp("600000")}, now.Add(-time.Hour), kerr.InvalidTimestamp},
		{"difference: an hour ahead", map[string]*string{"message.timestamp.difference.max.ms": sp("600000")}, now.Add(time.Hour), kerr.InvalidTimestamp},
		{"difference: a minute old", map[string]*string{"message.timestamp.difference.max.ms": sp("600000")}, now.Add(-time.Minute), nil},
		{"before: a day old", map[string]*string{"message.timestamp.before.max.ms": sp("3600000")}, now.Add(-24 * time.Hour), kerr.InvalidTimestamp},
		{"before: far ahead is fine", map[string]*string{"message.timestamp.before.max.ms": sp("3600000")}, now.Add(24 * time.Hour), nil},
		{"after: a minute ahead", map[string]*string{"message.timestamp.after.max.ms": sp("10000")}, now.Add(time.Minute), kerr.InvalidTimestamp},
		{"after: a year old is fine", map[string]*string{"message.timestamp.after.max.ms": sp("10000")}, now.Add(-365 * 24 * time.Hour), nil},
		{"LogAppendTime ignores bounds", map[string]*string{"message.timestamp.difference.max.ms": sp("1000"), "message.timestamp.type": sp("LogAppendTime")}, now.Add(-time.Hour), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("ts-%d", time.Now().UnixNano())
			createTopic(t, adm, topic, 1, tc.cfg)
			p := client(t, b.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordRetries(0), kgo.ProducerBatchCompression(kgo.GzipCompression()))
			err := p.ProduceSync(ctxT(t), &kgo.Record{Value: []byte("v"), Timestamp: tc.ts}).FirstErr()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("produce: %v, want %v", err, tc.want)
			}
			end, err := adm.ListEndOffsets(ctxT(t), topic)
			if err != nil {
				t.Fatal(err)
			}
			o, _ := end.Lookup(topic, 0)
			if stored := o.Offset == 1; stored != (tc.want == nil) {
				t.Fatalf("end offset %d after the produce", o.Offset)
			}
		})
	}
}

// TestMaxMessageBytesAfterRecompression: max.message.bytes applies to the
// batch as stored, in the topic's codec: a small gzip batch that becomes
// too large uncompressed is refused with MESSAGE_TOO_LARGE.
func TestMaxMessageBytesAfterRecompression(t *testing.T) {
	b, _ := brokerWithTopic(t, "mmb", 1, map[string]*string{"compression.type": sp("uncompressed"), "max.message.bytes": sp("2000")})
	p := client(t, b.Addr, kgo.DefaultProduceTopic("mmb"), kgo.RecordRetries(0), kgo.ProducerBatchCompression(kgo.GzipCompression()))
	err := p.ProduceSync(ctxT(t), &kgo.Record{Value: bytes.Repeat([]byte("a"), 10000)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("produce: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Value: []byte("small")}).FirstErr(); err != nil {
		t.Fatalf("a small record after it: %v", err)
	}
}

// TestDownConversionDisabledRefusesOldFetchers: a topic with
// message.downconversion.enable=false answers Fetch v0–v3 with
// UNSUPPORTED_VERSION and Fetch v4+ as usual.
func TestDownConversionDisabledRefusesOldFetchers(t *testing.T) {
	b, _ := brokerWithTopic(t, "nodc", 1, map[string]*string{"message.downconversion.enable": sp("false")})
	p := client(t, b.Addr, kgo.DefaultProduceTopic("nodc"))
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, b.Addr)
	if fp := fetchLegacy(t, c, 3, "nodc", 0); fp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("Fetch v3: %v, want UNSUPPORTED_VERSION", kerr.ErrorForCode(fp.ErrorCode))
	}
	if fp := fetchLegacy(t, c, 4, "nodc", 0); fp.ErrorCode != 0 || len(fp.RecordBatches) == 0 {
		t.Fatalf("Fetch v4: %v", kerr.ErrorForCode(fp.ErrorCode))
	}
}

// TestDescribeConfigsListsEveryTopicConfig: DescribeConfigs lists every
// topic config with its default, source DEFAULT_CONFIG, and Kafka's
// broker synonym for the default (log.retention.hours=168 for
// retention.ms).
func TestDescribeConfigsListsEveryTopicConfig(t *testing.T) {
	b, _ := brokerWithTopic(t, "desc", 1, nil)
	c := dial(t, b.Addr)
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "desc"
	req.Resources, req.IncludeSynonyms, req.IncludeDocumentation = append(req.Resources, rr), true, true
	resp := kmsg.NewPtrDescribeConfigsResponse()
	roundTrip(t, c, req, 4, resp)
	got := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, cfg := range resp.Resources[0].Configs {
		got[cfg.Name] = cfg
	}
	for name, want := range map[string]string{"compression.type": "producer", "message.format.version": "3.0-IV1", "message.downconversion.enable": "true",
		"message.timestamp.before.max.ms": "9223372036854775807", "remote.storage.enable": "false", "local.retention.ms": "-2", "compression.zstd.level": "3"} {
		cfg, ok := got[name]
		if !ok || cfg.Value == nil || *cfg.Value != want || cfg.Source != kmsg.ConfigSourceDefaultConfig || cfg.Documentation == nil {
			t.Errorf("%s: %+v, want default %s", name, cfg, want)
		}
	}
	if len(got) != 36 {
		t.Errorf("%d topic configs described, Kafka 3.9 has 36", len(got))
	}
	syn := got["retention.ms"].ConfigSynonyms
	if last := syn[len(syn)-1]; last.Name != "log.retention.hours" || *last.Value != "168" || last.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("retention.ms default synonym %s=%s (source %v)", last.Name, *last.Value, last.Source)
	}
}
