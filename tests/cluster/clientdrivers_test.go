package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The client scripts of the compat tests (tests/compat/clients) serve this
// test too: their produce_stream op and their consume op.
const (
	scriptsDir = "../compat/clients"
	python     = "/usr/bin/python3"
	installMsg = "install the compat clients with make compat-tools (apt: kcat python3-confluent-kafka python3-kafka; npm: kafkajs in tests/compat/clients)"
	// pauseMs paces the producers: a few hundred records a second keeps two
	// shared cores free for three brokers while the leader changes.
	pauseMs = 3
)

func key(i int) string { return fmt.Sprintf("k%07d", i) }

// failoverClients lists every client of the matrix; a missing one fails the
// test with how to install it.
func failoverClients(t *testing.T) []failoverClient {
	t.Helper()
	var out []failoverClient
	scriptClient := func(name string, argv []string, idempotent bool, extra map[string]any) {
		var v struct{ Version string }
		if err := runScript(argv, map[string]any{"op": "version"}, &v); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, installMsg)
		}
		out = append(out, failoverClient{name: name, version: v.Version, idempotent: idempotent,
			produce: func(t *testing.T, bootstrap, topic string, stop <-chan struct{}, d *deliveries) error {
				req := map[string]any{"op": "produce_stream", "bootstrap": bootstrap, "topic": topic, "partitions": failoverPartitions,
					"idempotent": idempotent, "pause_ms": pauseMs}
				for k, v := range extra {
					req[k] = v
				}
				return streamScript(t, argv, req, stop, d)
			},
			consume: func(t *testing.T, bootstrap, topic string, ends map[int32]int64) ([]readRec, error) {
				n := int64(0)
				for _, e := range ends {
					n += e
				}
				var got []struct {
					Partition int32   `json:"partition"`
					Offset    int64   `json:"offset"`
					Key       *string `json:"key"`
				}
				if err := runScript(argv, map[string]any{"op": "consume", "bootstrap": bootstrap, "topic": topic, "n": n}, &got); err != nil {
					return nil, err
				}
				recs := make([]readRec, 0, len(got))
				for _, g := range got {
					var k []byte
					if g.Key != nil {
						k, _ = base64.StdEncoding.DecodeString(*g.Key)
					}
					recs = append(recs, readRec{key: string(k), partition: g.Partition, offset: g.Offset})
				}
				return recs, nil
			},
		})
	}
	scriptClient("confluent-kafka-python", []string{python, filepath.Join(scriptsDir, "confluent_client.py")}, true, nil)
	scriptClient("kafka-python", []string{python, filepath.Join(scriptsDir, "kafkapython_client.py")}, false, nil)
	if _, err := os.Stat(filepath.Join(scriptsDir, "node_modules", "kafkajs")); err != nil {
		t.Fatalf("kafkajs: %v\n%s", err, installMsg)
	}
	// kafkajs gives up after 5 retries (about 10 s) by default; an election
	// and a client's metadata refresh fit, but not on a busy machine.
	scriptClient("kafkajs", []string{"node", filepath.Join(scriptsDir, "kafkajs_client.js")}, true,
		map[string]any{"retry": map[string]any{"retries": 15, "initialRetryTime": 100, "maxRetryTime": 3000}})
	out[len(out)-1].caveat = "one record per send(): kafkajs 2.2.4 resolves a send() of several partitions without resending the records of a partition " +
		"whose leader moved to a broker that had already answered for another partition of that send (it keeps each broker's response across " +
		"retries), so those records are reported sent and never written (seen in this test, one record lost, before it sent one record at a time)"
	out = append(out, kcatClient(t), saramaClient(), kafkaGoClient(), franzGoClient())
	return out
}

// runScript runs a client script with one JSON request and decodes its one
// JSON result.
func runScript(argv []string, req map[string]any, out any) error {
	in, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", strings.Join(argv, " "), req["op"], err, tail(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s %v: bad output %q: %w\n%s", strings.Join(argv, " "), req["op"], tail(stdout.String()), err, tail(stderr.String()))
	}
	return nil
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// streamScript runs a script's produce_stream op: delivery reports arrive
// as JSON lines; SIGTERM tells it to stop, flush and report "done".
func streamScript(t *testing.T, argv []string, req map[string]any, stop <-chan struct{}, d *deliveries) error {
	in, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w (%s)", argv[0], err, installMsg)
	}
	exited := make(chan struct{})
	go func() {
		select {
		case <-stop:
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case <-exited:
		}
	}()
	done := false
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Ev, Key, Msg string
			Partition    int32
			Offset       int64
			Sent, N      int
			Unreported   int
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue // a client library's own chatter
		}
		switch ev.Ev {
		case "sent":
			d.sentUpTo(ev.N)
		case "ack":
			d.ack(ev.Key, ev.Partition, ev.Offset)
		case "error":
			d.fail(ev.Key, ev.Msg)
		case "done":
			done = true
			t.Logf("%s sent %d records, %d left unreported", filepath.Base(argv[1]), ev.Sent, ev.Unreported)
		}
	}
	err = cmd.Wait()
	close(exited)
	switch {
	case err != nil:
		return fmt.Errorf("%s produce_stream: %w\n%s", strings.Join(argv, " "), err, tail(stderr.String()))
	case !done:
		return fmt.Errorf("%s produce_stream exited without reporting done\n%s", strings.Join(argv, " "), tail(stderr.String()))
	}
	return nil
}

// kcat names neither key nor record in its delivery reports, only the
// partition and offset ("Message delivered to partition 0 (offset 17)" at
// verbosity 3), so it writes to partition 0 alone: librdkafka reports the
// records of a partition in the order they were produced, which maps the
// n-th report to the n-th line.
var kcatDelivered = regexp.MustCompile(`Message delivered to partition (\d+) \(offset (-?\d+)\)`)

func kcatClient(t *testing.T) failoverClient {
	t.Helper()
	v, err := exec.Command("kcat", "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, installMsg)
	}
	version := ""
	for _, line := range strings.Split(string(v), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Version" {
			version = f[1]
			if i := strings.Index(line, "librdkafka "); i >= 0 {
				version += ", librdkafka " + strings.Fields(line[i+len("librdkafka "):])[0]
			}
		}
	}
	return failoverClient{name: "kcat (librdkafka)", version: version, idempotent: true,
		caveat: "kcat's delivery reports name no record, so it writes to partition 0 only (the partition whose leader is killed)",
		produce: func(t *testing.T, bootstrap, topic string, stop <-chan struct{}, d *deliveries) error {
			cmd := exec.Command("kcat", "-b", bootstrap, "-P", "-t", topic, "-p", "0", "-K", "\t", "-v", "-v",
				"-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5", "-X", "message.timeout.ms=120000")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				return err
			}
			stderr, err := cmd.StderrPipe()
			if err != nil {
				return err
			}
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("kcat: %w (%s)", err, installMsg)
			}
			var mu sync.Mutex
			sent := 0
			go func() {
				defer stdin.Close()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := fmt.Fprintf(stdin, "%s\t%s\n", key(i), key(i)); err != nil {
						return
					}
					mu.Lock()
					sent = i + 1
					mu.Unlock()
					d.sentUpTo(i + 1)
					time.Sleep(pauseMs * time.Millisecond)
				}
			}()
			var log strings.Builder
			reported := 0
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				line := sc.Text()
				if m := kcatDelivered.FindStringSubmatch(line); m != nil {
					var p int32
					var off int64
					fmt.Sscan(m[1], &p)
					fmt.Sscan(m[2], &off)
					d.ack(key(reported), p, off)
					reported++
					continue
				}
				if strings.Contains(line, "Delivery failed") {
					d.fail(key(reported), line)
					reported++
					continue
				}
				if log.Len() < 1<<16 {
					log.WriteString(line + "\n")
				}
			}
			err = cmd.Wait()
			mu.Lock()
			defer mu.Unlock()
			t.Logf("kcat sent %d records, %d reports", sent, reported)
			if err != nil {
				return fmt.Errorf("kcat -P: %w\n%s", err, tail(log.String()))
			}
			return nil
		},
		consume: func(t *testing.T, bootstrap, topic string, ends map[int32]int64) ([]readRec, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// -e: exit at the end of every partition.
			cmd := exec.CommandContext(ctx, "kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			outb, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("kcat -C: %w\n%s", err, tail(stderr.String()))
			}
			var recs []readRec
			sc := bufio.NewScanner(bytes.NewReader(outb))
			for sc.Scan() {
				var m struct {
					Partition int32   `json:"partition"`
					Offset    int64   `json:"offset"`
					Key       *string `json:"key"`
				}
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					return nil, fmt.Errorf("kcat -J line %q: %w", sc.Text(), err)
				}
				k := ""
				if m.Key != nil {
					k = *m.Key
				}
				recs = append(recs, readRec{key: k, partition: m.Partition, offset: m.Offset})
			}
			return recs, nil
		},
	}
}

func saramaClient() failoverClient {
	config := func() *sarama.Config {
		c := sarama.NewConfig()
		c.Version = sarama.V3_6_0_0
		c.ClientID = "cluster-sarama"
		c.Metadata.Full = false
		return c
	}
	return failoverClient{name: "sarama", version: "v1.61.1, protocol 3.6", idempotent: true,
		produce: func(t *testing.T, bootstrap, topic string, stop <-chan struct{}, d *deliveries) error {
			c := config()
			c.Producer.RequiredAcks = sarama.WaitForAll
			c.Producer.Idempotent = true
			c.Net.MaxOpenRequests = 1
			c.Producer.Partitioner = sarama.NewManualPartitioner
			c.Producer.Return.Successes, c.Producer.Return.Errors = true, true
			// sarama gives up after 3 retries 100 ms apart by default,
			// shorter than an election plus a metadata refresh.
			c.Producer.Retry.Max, c.Producer.Retry.Backoff = 100, 200*time.Millisecond
			p, err := sarama.NewAsyncProducer([]string{bootstrap}, c)
			if err != nil {
				return fmt.Errorf("sarama producer: %w", err)
			}
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				for m := range p.Successes() {
					d.ack(m.Metadata.(string), m.Partition, m.Offset)
				}
			}()
			go func() {
				defer wg.Done()
				for e := range p.Errors() {
					d.fail(e.Msg.Metadata.(string), e.Err.Error())
				}
			}()
			for i := 0; ; i++ {
				k := key(i)
				m := &sarama.ProducerMessage{Topic: topic, Partition: int32(i % failoverPartitions), Key: sarama.StringEncoder(k), Value: sarama.StringEncoder(k), Metadata: k}
				select {
				case <-stop:
					p.AsyncClose()
					wg.Wait()
					return nil
				case p.Input() <- m:
					d.sentUpTo(i + 1)
				}
				time.Sleep(pauseMs * time.Millisecond)
			}
		},
		consume: func(t *testing.T, bootstrap, topic string, ends map[int32]int64) ([]readRec, error) {
			c, err := sarama.NewConsumer([]string{bootstrap}, config())
			if err != nil {
				return nil, fmt.Errorf("sarama consumer: %w", err)
			}
			defer c.Close()
			var recs []readRec
			for p, end := range ends {
				if end == 0 {
					continue
				}
				pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					return nil, fmt.Errorf("sarama consume partition %d: %w", p, err)
				}
				timeout := time.After(90 * time.Second)
			read:
				for {
					select {
					case m := <-pc.Messages():
						recs = append(recs, readRec{key: string(m.Key), partition: m.Partition, offset: m.Offset})
						if m.Offset >= end-1 {
							break read
						}
					case e := <-pc.Errors():
						_ = pc.Close()
						return nil, fmt.Errorf("sarama consume partition %d: %w", p, e)
					case <-timeout:
						_ = pc.Close()
						return nil, fmt.Errorf("sarama: partition %d not read to offset %d within 90 s", p, end)
					}
				}
				_ = pc.Close()
			}
			return recs, nil
		},
	}
}

// partitionOf sends each kafka-go message to the partition in its
// WriterData (the Writer asks a Balancer, not Message.Partition).
type partitionOf struct{}

func (partitionOf) Balance(m kafka.Message, _ ...int) int { return m.WriterData.(int) }

func kafkaGoClient() failoverClient {
	return failoverClient{name: "segmentio/kafka-go", version: "v0.4.51", idempotent: false,
		caveat: "the Writer reports no offsets: acknowledged records are checked by key; it does not retry a record whose partition has no " +
			"leader in the metadata (leader -1, LEADER_NOT_AVAILABLE, as Chronik answers while the partition's Raft group elects one): such " +
			"records are reported failed to the application, not acknowledged",
		produce: func(t *testing.T, bootstrap, topic string, stop <-chan struct{}, d *deliveries) error {
			w := &kafka.Writer{Addr: kafka.TCP(bootstrap), Topic: topic, Balancer: partitionOf{}, RequiredAcks: kafka.RequireAll,
				BatchTimeout: 5 * time.Millisecond, BatchSize: 30, MaxAttempts: 30, WriteBackoffMin: 100 * time.Millisecond, WriteBackoffMax: time.Second,
				// Its own transport: the shared default caches metadata
				// across tests.
				Transport: &kafka.Transport{MetadataTTL: time.Second}}
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			// Synchronous writes of one small batch each: a write returns
			// once every message in it is acknowledged or given up on.
			for i := 0; ; {
				select {
				case <-stop:
					return nil
				default:
				}
				msgs := make([]kafka.Message, 0, 30)
				for range 30 {
					msgs = append(msgs, kafka.Message{Key: []byte(key(i)), Value: []byte(key(i)), WriterData: i % failoverPartitions})
					i++
				}
				d.sentUpTo(i)
				err := w.WriteMessages(ctx, msgs...)
				var werrs kafka.WriteErrors
				switch {
				case err == nil:
				case errors.As(err, &werrs):
				default:
					for _, m := range msgs {
						d.fail(string(m.Key), err.Error())
					}
					continue
				}
				for j, m := range msgs {
					if werrs != nil && werrs[j] != nil {
						d.fail(string(m.Key), werrs[j].Error())
						continue
					}
					d.ack(string(m.Key), int32(m.WriterData.(int)), -1)
				}
				time.Sleep(30 * pauseMs * time.Millisecond)
			}
		},
		consume: func(t *testing.T, bootstrap, topic string, ends map[int32]int64) ([]readRec, error) {
			var recs []readRec
			for p, end := range ends {
				if end == 0 {
					continue
				}
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, Partition: int(p), MaxWait: 100 * time.Millisecond})
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				for {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						cancel()
						_ = r.Close()
						return nil, fmt.Errorf("kafka-go read partition %d (%d records so far): %w", p, len(recs), err)
					}
					recs = append(recs, readRec{key: string(m.Key), partition: int32(m.Partition), offset: m.Offset})
					if m.Offset >= end-1 {
						break
					}
				}
				cancel()
				_ = r.Close()
			}
			return recs, nil
		},
	}
}

func franzGoClient() failoverClient {
	return failoverClient{name: "franz-go", version: "v1.22.3", idempotent: true,
		produce: func(t *testing.T, bootstrap, topic string, stop <-chan struct{}, d *deliveries) error {
			cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(2*time.Minute), kgo.ProducerLinger(5*time.Millisecond))
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return cl.Flush(ctx)
				default:
				}
				k := key(i)
				cl.Produce(ctx, &kgo.Record{Key: []byte(k), Value: []byte(k), Partition: int32(i % failoverPartitions)}, func(r *kgo.Record, err error) {
					if err != nil {
						d.fail(k, err.Error())
						return
					}
					d.ack(k, r.Partition, r.Offset)
				})
				d.sentUpTo(i + 1)
				time.Sleep(pauseMs * time.Millisecond)
			}
		},
		consume: func(t *testing.T, bootstrap, topic string, ends map[int32]int64) ([]readRec, error) {
			parts := map[int32]kgo.Offset{}
			for p := range ends {
				parts[p] = kgo.NewOffset().AtStart()
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
			if err != nil {
				return nil, err
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			var recs []readRec
			next := map[int32]int64{}
			for {
				done := true
				for p, end := range ends {
					if next[p] < end {
						done = false
					}
				}
				if done {
					return recs, nil
				}
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					return recs, fmt.Errorf("franz-go: read to %v of %v: %w", next, ends, ctx.Err())
				}
				fs.EachRecord(func(r *kgo.Record) {
					recs = append(recs, readRec{key: string(r.Key), partition: r.Partition, offset: r.Offset})
					next[r.Partition] = r.Offset + 1
				})
			}
		},
	}
}
