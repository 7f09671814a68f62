package compat

import (
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

// produceOpts say how a driver produces.
type produceOpts struct {
	codec      string // none, gzip, snappy, lz4, zstd
	idempotent bool
}

// adminOps are a client's admin operations.
type adminOps interface {
	createTopic(t *testing.T, name string, partitions int32, configs map[string]string)
	describeConfig(t *testing.T, topic, key string) string
	alterConfig(t *testing.T, topic, key, value string)
	deleteTopic(t *testing.T, topic string)
}

// driver is one client library as the tests use it.
type driver struct {
	name, version string
	// produce sends recs (each to its Partition) and returns them with the
	// offsets the client was told, when offsetsKnown.
	produce      func(t *testing.T, topic string, recs []rec, o produceOpts) []rec
	offsetsKnown bool
	// consume reads n records of topic from the beginning of every
	// partition, without a consumer group.
	consume func(t *testing.T, topic string, n int) []rec
	admin   adminOps
	// missing lists features the client does not have, with the reason.
	missing map[string]string
}

var codecs = []string{"gzip", "snappy", "lz4", "zstd"}

// runDriver runs every feature of the matrix with d.
func runDriver(t *testing.T, d driver) {
	results.version(d.name, d.version)
	t.Run(d.name, func(t *testing.T) {
		skip := func(f string) bool {
			if why, ok := d.missing[f]; ok {
				notApplicable(d.name, f, why)
				return true
			}
			return false
		}
		if !skip("produce") {
			cell(t, d.name, "produce", func(t *testing.T) {
				topic := newTopic(t, 1, nil)
				got := d.produce(t, topic, sampleRecords(60, 1, true), produceOpts{codec: "none"})
				checkStored(t, topic, got, d.offsetsKnown)
			})
		}
		if !skip("consume") {
			cell(t, d.name, "consume", func(t *testing.T) {
				topic := newTopic(t, 1, nil)
				written := writeAll(t, topic, sampleRecords(60, 1, true))
				checkConsumed(t, written, d.consume(t, topic, len(written)))
			})
		}
		for _, c := range codecs {
			if skip(c) {
				continue
			}
			cell(t, d.name, c, func(t *testing.T) {
				topic := newTopic(t, 1, nil)
				got := d.produce(t, topic, sampleRecords(200, 1, true), produceOpts{codec: c})
				checkStored(t, topic, got, d.offsetsKnown)
				checkConsumed(t, readAll(t, topic, len(got)), d.consume(t, topic, len(got)))
			})
		}
		if !skip("1 MiB record") {
			cell(t, d.name, "1 MiB record", func(t *testing.T) {
				maxBytes := "4194304"
				topic := newTopic(t, 1, map[string]*string{"max.message.bytes": &maxBytes})
				big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
				recs := []rec{{Key: b64([]byte("small")), Value: b64([]byte("before"))}, {Key: b64([]byte("big")), Value: b64([]byte(big))}, {Value: b64([]byte("after"))}}
				got := d.produce(t, topic, recs, produceOpts{codec: "none"})
				checkStored(t, topic, got, d.offsetsKnown)
				checkConsumed(t, readAll(t, topic, len(recs)), d.consume(t, topic, len(recs)))
			})
		}
		if !skip("12 partitions") {
			cell(t, d.name, "12 partitions", func(t *testing.T) {
				topic := newTopic(t, 12, nil)
				got := d.produce(t, topic, sampleRecords(240, 12, false), produceOpts{codec: "none"})
				checkStored(t, topic, got, d.offsetsKnown)
				checkConsumed(t, readAll(t, topic, len(got)), d.consume(t, topic, len(got)))
			})
		}
		if !skip("idempotent") {
			cell(t, d.name, "idempotent", func(t *testing.T) {
				topic := newTopic(t, 3, nil)
				got := d.produce(t, topic, sampleRecords(150, 3, true), produceOpts{codec: "none", idempotent: true})
				checkStored(t, topic, got, d.offsetsKnown)
			})
		}
		if d.admin == nil {
			for _, f := range []string{"create topic", "describe configs", "alter config", "delete topic"} {
				skip(f)
			}
			return
		}
		adm := kadm.NewClient(kgoClient(t))
		name := topicName(t.Name()) + ".admin"
		cell(t, d.name, "create topic", func(t *testing.T) {
			d.admin.createTopic(t, name, 3, map[string]string{"retention.ms": "123456"})
			md, err := adm.Metadata(ctx(t), name)
			if err != nil || len(md.Topics[name].Partitions) != 3 {
				t.Fatalf("after create: %v, %d partitions", err, len(md.Topics[name].Partitions))
			}
			if v := kadmConfig(t, adm, name, "retention.ms"); v != "123456" {
				t.Fatalf("retention.ms %q after create", v)
			}
		})
		cell(t, d.name, "describe configs", func(t *testing.T) {
			if v := d.admin.describeConfig(t, name, "retention.ms"); v != "123456" {
				t.Fatalf("client sees retention.ms=%q, want 123456", v)
			}
			if v := d.admin.describeConfig(t, name, "segment.bytes"); v != strconv.Itoa(64<<20) {
				t.Fatalf("client sees segment.bytes=%q, want the broker default %d", v, 64<<20)
			}
		})
		cell(t, d.name, "alter config", func(t *testing.T) {
			d.admin.alterConfig(t, name, "retention.ms", "654321")
			if v := kadmConfig(t, adm, name, "retention.ms"); v != "654321" {
				t.Fatalf("retention.ms %q after alter", v)
			}
		})
		cell(t, d.name, "delete topic", func(t *testing.T) {
			d.admin.deleteTopic(t, name)
			if md, _ := kadm.NewClient(kgoClient(t)).ListTopics(ctx(t)); md.Has(name) {
				t.Fatal("topic still exists after delete")
			}
		})
	})
}

// kadmConfig reads one topic config with franz-go.
func kadmConfig(t *testing.T, adm *kadm.Client, topic, key string) string {
	t.Helper()
	rc, err := adm.DescribeTopicConfigs(ctx(t), topic)
	if err != nil || len(rc) == 0 || rc[0].Err != nil {
		t.Fatalf("describe %s: %v", topic, err)
	}
	for _, c := range rc[0].Configs {
		if c.Key == key && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}
