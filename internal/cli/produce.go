package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/kafkaopt"
	"github.com/chronik-go/chronik/internal/perf"
)

// JSONRecord is the JSON form of a record read by `produce -f json` and
// written by `consume -o json`. Value and key are text; *_b64 carry bytes
// that are not UTF-8.
type JSONRecord struct {
	Topic     string            `json:"topic,omitempty"`
	Partition *int32            `json:"partition,omitempty"`
	Offset    *int64            `json:"offset,omitempty"`
	Timestamp *int64            `json:"timestamp,omitempty"` // ms since the epoch
	Key       *string           `json:"key,omitempty"`
	KeyB64    *string           `json:"key_b64,omitempty"`
	Value     *string           `json:"value,omitempty"`
	ValueB64  *string           `json:"value_b64,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
}

func textOrB64(b []byte) (text, b64 *string) {
	if b == nil {
		return nil, nil
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

// NewProduceCommand is `chronik produce`: records from stdin, one per line.
func NewProduceCommand() *cobra.Command {
	var c common
	var (
		topic, format, keySep, acks string
		partition                   int32
	)
	cmd := &cobra.Command{
		Use:   "produce -t TOPIC",
		Short: "Produce records read from stdin, one per line (text, key<sep>value, or JSON)",
		Long: `Produce records read from standard input, one per line.

  -f line (default): each line is a value; with -K SEP, "key SEP value".
  -f json: each line is {"key": "...", "value": "...", "headers": {...},
           "partition": N}, or key_b64/value_b64 for bytes.

Every record is acknowledged before the command ends (acks=all by default);
the first failure is reported and the exit status is non-zero. With -o json
each record's partition and offset is printed as a JSON line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			if format != "line" && format != "json" {
				return fmt.Errorf("unknown format %q (line or json)", format)
			}
			// Like kafka-console-producer and kcat: a missing topic is created when
			// the broker allows it (auto.create.topics.enable).
			opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5 * time.Millisecond), kgo.AllowAutoTopicCreation()}
			ackOpts, err := kafkaopt.ProducerAcks(acks)
			if err != nil {
				return err
			}
			opts = append(opts, ackOpts...)
			opts = append(opts, kgo.RecordPartitioner(explicitOrKey{kgo.StickyKeyPartitioner(nil)}))
			cl, err := c.client(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return produceLines(ctx, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cl, &c, format, keySep, partition)
		},
	}
	c.register(cmd)
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic to produce to")
	f.StringVarP(&format, "format", "f", "line", "input: line or json")
	f.StringVarP(&keySep, "key-separator", "K", "", "line format: split each line into key and value at the first SEP")
	f.Int32VarP(&partition, "partition", "p", -1, "partition (default: by key, or spread)")
	f.StringVar(&acks, "acks", "all", "0, 1 or all")
	return cmd
}

// explicitOrKey sends a record with a partition set (-p, or "partition" in
// JSON) there, and any other by Kafka's key hash (sticky when keyless).
type explicitOrKey struct{ base kgo.Partitioner }

func (p explicitOrKey) ForTopic(t string) kgo.TopicPartitioner {
	return explicitTopic{p.base.ForTopic(t)}
}

type explicitTopic struct{ base kgo.TopicPartitioner }

func (p explicitTopic) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition >= 0 || p.base.RequiresConsistency(r)
}

func (p explicitTopic) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return int(r.Partition)
	}
	return p.base.Partition(r, n)
}

func produceLines(ctx context.Context, in io.Reader, out, errw io.Writer, cl *kgo.Client, c *common, format, keySep string, partition int32) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var (
		mu       sync.Mutex
		firstErr error
		sent     int
		done     int
		wg       sync.WaitGroup
	)
	enc := json.NewEncoder(out)
	line := 0
	for sc.Scan() && ctx.Err() == nil {
		line++
		text := sc.Bytes()
		rec := &kgo.Record{Partition: partition}
		switch format {
		case "json":
			if len(strings.TrimSpace(string(text))) == 0 {
				continue
			}
			var jr JSONRecord
			if err := json.Unmarshal(text, &jr); err != nil {
				return fmt.Errorf("line %d: not a JSON record: %w", line, err)
			}
			var err error
			if rec.Key, err = perf.TextOrBase64(jr.Key, jr.KeyB64, "key"); err != nil {
				return fmt.Errorf("line %d: %w", line, err)
			}
			if rec.Value, err = perf.TextOrBase64(jr.Value, jr.ValueB64, "value"); err != nil {
				return fmt.Errorf("line %d: %w", line, err)
			}
			for k, v := range jr.Headers {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
			if jr.Partition != nil {
				rec.Partition = *jr.Partition
			}
		default:
			v := append([]byte(nil), text...)
			if keySep != "" {
				if k, val, ok := strings.Cut(string(v), keySep); ok {
					rec.Key, v = []byte(k), []byte(val)
				}
			}
			rec.Value = v
		}
		sent++
		wg.Add(1)
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			done++
			if c.output == "json" {
				_ = enc.Encode(map[string]any{"topic": r.Topic, "partition": r.Partition, "offset": r.Offset})
			}
		})
	}
	wg.Wait()
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if firstErr != nil {
		if errors.Is(firstErr, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("produced %d of %d records: the topic or partition does not exist", done, sent)
		}
		return c.brokerErr(fmt.Errorf("produced %d of %d records: %w", done, sent, firstErr))
	}
	if c.output != "json" {
		fmt.Fprintf(errw, "produced %s records\n", strconv.Itoa(done))
	}
	return nil
}
