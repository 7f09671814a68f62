package compat

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestFranzGo(t *testing.T) {
	codecOf := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
	runDriver(t, driver{
		name: "franz-go", version: "v1.22.3",
		offsetsKnown: true,
		produce: func(t *testing.T, topic string, recs []rec, o produceOpts) []rec {
			opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(codecOf[o.codec]),
				kgo.ProducerBatchMaxBytes(4 << 20), kgo.MaxBufferedBytes(64 << 20)}
			if !o.idempotent {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			return produceKgo(t, kgoClient(t, opts...), recs)
		},
		consume: readAll,
		admin:   franzAdmin{},
	})
}

type franzAdmin struct{}

func (franzAdmin) createTopic(t *testing.T, name string, partitions int32, configs map[string]string) {
	cfg := map[string]*string{}
	for k, v := range configs {
		cfg[k] = &v
	}
	r, err := kadm.NewClient(kgoClient(t)).CreateTopic(ctx(t), partitions, 1, cfg, name)
	if err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
}

func (franzAdmin) describeConfig(t *testing.T, topic, key string) string {
	return kadmConfig(t, kadm.NewClient(kgoClient(t)), topic, key)
}

func (franzAdmin) alterConfig(t *testing.T, topic, key, value string) {
	rs, err := kadm.NewClient(kgoClient(t)).AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Name: key, Value: &value}}, topic)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter: %v %v", err, rs)
	}
}

func (franzAdmin) deleteTopic(t *testing.T, topic string) {
	rs, err := kadm.NewClient(kgoClient(t)).DeleteTopics(ctx(t), topic)
	if err != nil || rs[topic].Err != nil {
		t.Fatalf("delete: %v %v", err, rs)
	}
}
