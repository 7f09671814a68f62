package compat

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "compat-sarama"
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.MaxMessageBytes = 4 << 20
	c.Consumer.Return.Errors = true
	c.Consumer.Fetch.Default = 8 << 20
	c.Metadata.Full = false
	return c
}

func TestSarama(t *testing.T) {
	codecOf := map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}
	runDriver(t, driver{
		name: "sarama", version: "v1.61.1, protocol 3.6",
		offsetsKnown: true,
		produce: func(t *testing.T, topic string, recs []rec, o produceOpts) []rec {
			c := saramaConfig()
			c.Producer.Compression = codecOf[o.codec]
			if o.idempotent {
				c.Producer.Idempotent = true
				c.Net.MaxOpenRequests = 1
			}
			p, err := sarama.NewSyncProducer([]string{addr(t)}, c)
			if err != nil {
				t.Fatalf("sarama producer: %v", err)
			}
			defer p.Close()
			var msgs []*sarama.ProducerMessage
			for _, r := range recs {
				m := &sarama.ProducerMessage{Topic: topic, Partition: r.Partition}
				if r.Key != nil {
					m.Key = sarama.ByteEncoder(unb64(r.Key))
				}
				if r.Value != nil {
					m.Value = sarama.ByteEncoder(unb64(r.Value))
				}
				for _, h := range r.Headers {
					m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: unb64(h.Value)})
				}
				msgs = append(msgs, m)
			}
			if err := p.SendMessages(msgs); err != nil {
				t.Fatalf("sarama send: %v", err)
			}
			out := make([]rec, len(recs))
			for i, m := range msgs {
				out[i] = recs[i]
				out[i].Partition, out[i].Offset = m.Partition, m.Offset
			}
			return out
		},
		consume: func(t *testing.T, topic string, n int) []rec {
			c, err := sarama.NewConsumer([]string{addr(t)}, saramaConfig())
			if err != nil {
				t.Fatalf("sarama consumer: %v", err)
			}
			defer c.Close()
			parts, err := c.Partitions(topic)
			if err != nil {
				t.Fatal(err)
			}
			msgs := make(chan *sarama.ConsumerMessage, n)
			errs := make(chan error, len(parts))
			for _, p := range parts {
				pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				go func() {
					for {
						select {
						case m, ok := <-pc.Messages():
							if !ok {
								return
							}
							msgs <- m
						case e, ok := <-pc.Errors():
							if ok {
								errs <- e
							}
							return
						}
					}
				}()
			}
			var out []rec
			deadline := time.After(60 * time.Second)
			for len(out) < n {
				select {
				case m := <-msgs:
					r := rec{Partition: m.Partition, Offset: m.Offset, Key: b64(m.Key), Value: b64(m.Value)}
					for _, h := range m.Headers {
						r.Headers = append(r.Headers, header{Key: string(h.Key), Value: b64(h.Value)})
					}
					out = append(out, r)
				case e := <-errs:
					t.Fatalf("sarama consume: %v", e)
				case <-deadline:
					t.Fatalf("sarama read %d of %d", len(out), n)
				}
			}
			return out
		},
		admin: saramaAdmin{},
	})
}

type saramaAdmin struct{}

func (saramaAdmin) open(t *testing.T) sarama.ClusterAdmin {
	c := saramaConfig()
	c.Metadata.Full = true // the cluster admin refreshes all topics
	a, err := sarama.NewClusterAdmin([]string{addr(t)}, c)
	if err != nil {
		t.Fatalf("sarama admin: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func (s saramaAdmin) createTopic(t *testing.T, name string, partitions int32, configs map[string]string) {
	entries := map[string]*string{}
	for k, v := range configs {
		entries[k] = &v
	}
	if err := s.open(t).CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: entries}, false); err != nil {
		t.Fatalf("create: %v", err)
	}
}

func (s saramaAdmin) describeConfig(t *testing.T, topic, key string) string {
	rs, err := s.open(t).DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic}}, sarama.DescribeConfigsOptions{})
	if err != nil || len(rs) != 1 || rs[0].ErrorCode != sarama.ErrNoError {
		t.Fatalf("describe: %v %+v", err, rs)
	}
	for _, e := range rs[0].Configs {
		if e.Name == key {
			return e.Value
		}
	}
	return ""
}

func (s saramaAdmin) alterConfig(t *testing.T, topic, key, value string) {
	err := s.open(t).IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{key: {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &value}}, false)
	if err != nil {
		t.Fatalf("alter: %v", err)
	}
}

func (s saramaAdmin) deleteTopic(t *testing.T, topic string) {
	if err := s.open(t).DeleteTopic(topic); err != nil {
		t.Fatalf("delete: %v", err)
	}
}
