package compat

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

// partitionFromMessage sends each message to the partition the test chose
// (kafka-go's Writer ignores Message.Partition and asks a Balancer).
type partitionFromMessage struct{}

func (partitionFromMessage) Balance(m kafka.Message, _ ...int) int {
	p, _ := strconv.Atoi(string(m.WriterData.(string)))
	return p
}

func TestKafkaGo(t *testing.T) {
	codecOf := map[string]compress.Codec{"none": nil, "gzip": compress.Gzip.Codec(), "snappy": compress.Snappy.Codec(), "lz4": compress.Lz4.Codec(), "zstd": compress.Zstd.Codec()}
	runDriver(t, driver{
		name: "segmentio/kafka-go", version: "v0.4.51",
		offsetsKnown: false,
		produce: func(t *testing.T, topic string, recs []rec, o produceOpts) []rec {
			w := &kafka.Writer{Addr: kafka.TCP(addr(t)), Topic: topic, Balancer: partitionFromMessage{}, RequiredAcks: kafka.RequireAll,
				BatchBytes: 8 << 20, BatchTimeout: 5 * time.Millisecond, BatchSize: 1000,
				// A transport of its own: the shared default one caches
				// metadata and does not know topics created since.
				Transport: &kafka.Transport{}}
			if c := codecOf[o.codec]; c != nil {
				w.Compression = kafka.Compression(c.Code())
			}
			defer w.Close()
			var msgs []kafka.Message
			for _, r := range recs {
				m := kafka.Message{Key: unb64(r.Key), Value: unb64(r.Value), WriterData: strconv.Itoa(int(r.Partition))}
				for _, h := range r.Headers {
					m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: unb64(h.Value)})
				}
				msgs = append(msgs, m)
			}
			if err := w.WriteMessages(ctx(t), msgs...); err != nil {
				t.Fatalf("kafka-go write: %v", err)
			}
			return recs
		},
		consume: func(t *testing.T, topic string, n int) []rec {
			conn, err := kafka.DialContext(ctx(t), "tcp", addr(t))
			if err != nil {
				t.Fatal(err)
			}
			parts, err := conn.ReadPartitions(topic)
			_ = conn.Close()
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var out []rec
			c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for _, p := range parts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr(t)}, Topic: topic, Partition: p.ID, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
					defer r.Close()
					for {
						mu.Lock()
						done := len(out) >= n
						mu.Unlock()
						if done {
							return
						}
						rc, rcancel := context.WithTimeout(c, 500*time.Millisecond)
						m, err := r.ReadMessage(rc)
						rcancel()
						if errors.Is(err, context.DeadlineExceeded) && c.Err() == nil {
							continue
						}
						if err != nil {
							return
						}
						rr := rec{Partition: int32(m.Partition), Offset: m.Offset, Key: b64(m.Key), Value: b64(m.Value)}
						for _, h := range m.Headers {
							rr.Headers = append(rr.Headers, header{Key: h.Key, Value: b64(h.Value)})
						}
						mu.Lock()
						out = append(out, rr)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(out) < n {
				t.Fatalf("kafka-go read %d of %d", len(out), n)
			}
			return out
		},
		admin: kafkaGoAdmin{},
		missing: map[string]string{
			"idempotent": "kafka-go has no idempotent producer",
		},
	})
}

type kafkaGoAdmin struct{}

func (kafkaGoAdmin) client(t *testing.T) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(addr(t)), Timeout: 30 * time.Second}
}

func (a kafkaGoAdmin) createTopic(t *testing.T, name string, partitions int32, configs map[string]string) {
	tc := kafka.TopicConfig{Topic: name, NumPartitions: int(partitions), ReplicationFactor: 1}
	for k, v := range configs {
		tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	resp, err := a.client(t).CreateTopics(ctx(t), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{tc}})
	if err != nil || resp.Errors[name] != nil {
		t.Fatalf("create: %v %v", err, resp)
	}
}

func (a kafkaGoAdmin) describeConfig(t *testing.T, topic, key string) string {
	resp, err := a.client(t).DescribeConfigs(ctx(t), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}}})
	if err != nil || len(resp.Resources) != 1 || resp.Resources[0].Error != nil {
		t.Fatalf("describe: %v %+v", err, resp)
	}
	for _, e := range resp.Resources[0].ConfigEntries {
		if e.ConfigName == key {
			return e.ConfigValue
		}
	}
	return ""
}

func (a kafkaGoAdmin) alterConfig(t *testing.T, topic, key, value string) {
	resp, err := a.client(t).IncrementalAlterConfigs(ctx(t), &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: key, Value: value, ConfigOperation: kafka.ConfigOperationSet}},
	}}})
	if err != nil || resp.Resources[0].Error != nil {
		t.Fatalf("alter: %v %+v", err, resp)
	}
}

func (a kafkaGoAdmin) deleteTopic(t *testing.T, topic string) {
	resp, err := a.client(t).DeleteTopics(ctx(t), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil || resp.Errors[topic] != nil {
		t.Fatalf("delete: %v %+v", err, resp)
	}
}
