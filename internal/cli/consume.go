package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NewConsumeCommand is `chronik consume`: records to stdout, one per line.
func NewConsumeCommand() *cobra.Command {
	var c common
	var (
		topic, from, group, keySep string
		partitions                 []int32
		count                      int
		exitAtEnd                  bool
	)
	cmd := &cobra.Command{
		Use:   "consume -t TOPIC",
		Short: "Print records of a topic, one per line (values, key<sep>value, or -o json)",
		Long: `Print the records of a topic, one per line.

By default every partition is read (assigned, no group) from --from
(earliest, latest, an offset, or an RFC 3339 time). With -g GROUP the
command joins the group and commits what it printed. -e stops at the end of
the partitions as they were when it started; -n after N records.

Output: the value (table), "key SEP value" with -K SEP, or one JSON object
per record with -o json (topic, partition, offset, timestamp, key, value,
headers; *_b64 for bytes that are not UTF-8).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return errors.New("--topic is required")
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			adm := kadm.NewClient(cl)
			mctx, cancel := context.WithTimeout(ctx, c.timeout)
			ends, err := adm.ListEndOffsets(mctx, topic)
			cancel()
			if err == nil {
				err = ends.Error()
			}
			cl.Close()
			if err != nil {
				if errors.Is(err, kerr.UnknownTopicOrPartition) {
					return fmt.Errorf("topic %q does not exist", topic)
				}
				return c.brokerErr(err)
			}
			start, err := parseFrom(from)
			if err != nil {
				return err
			}
			// Retryable fetch errors are kept so that KAFKA_STORAGE_ERROR
			// (a damaged or failed log on the broker) ends the command
			// with the reason instead of a silent wait for ever.
			opts := []kgo.Opt{kgo.FetchMaxWait(500 * time.Millisecond), kgo.KeepRetryableFetchErrors()}
			// The partitions read, each with its end offset at start (for -e).
			remaining := map[int32]int64{}
			ends.Each(func(o kadm.ListedOffset) {
				if len(partitions) == 0 || slices.Contains(partitions, o.Partition) {
					remaining[o.Partition] = o.Offset
				}
			})
			if group != "" {
				opts = append(opts, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(start))
			} else {
				if len(remaining) == 0 {
					return fmt.Errorf("topic %q has none of partitions %v", topic, partitions)
				}
				ps := map[int32]kgo.Offset{}
				for p := range remaining {
					ps[p] = start
				}
				opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: ps}))
			}
			cons, err := c.client(opts...)
			if err != nil {
				return err
			}
			defer cons.Close()
			return consumeLoop(ctx, cmd.OutOrStdout(), cons, &c, keySep, count, exitAtEnd, remaining, group != "")
		},
	}
	c.register(cmd)
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic to read")
	f.Int32SliceVarP(&partitions, "partitions", "p", nil, "only these partitions (without -g)")
	f.StringVar(&from, "from", "earliest", "earliest, latest, an offset, or an RFC 3339 time")
	f.StringVarP(&group, "group", "g", "", "read as a member of this group, committing what was printed")
	f.IntVarP(&count, "count", "n", 0, "stop after this many records")
	f.BoolVarP(&exitAtEnd, "exit-at-end", "e", false, "stop at the end offsets seen at start")
	f.StringVarP(&keySep, "key-separator", "K", "", "print key SEP value")
	return cmd
}

func parseFrom(s string) (kgo.Offset, error) {
	switch s {
	case "earliest", "beginning", "":
		return kgo.NewOffset().AtStart(), nil
	case "latest", "end":
		return kgo.NewOffset().AtEnd(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return kgo.NewOffset().At(n), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return kgo.NewOffset().AfterMilli(t.UnixMilli()), nil
	}
	return kgo.Offset{}, fmt.Errorf("--from %q: want earliest, latest, an offset or an RFC 3339 time", s)
}

func consumeLoop(ctx context.Context, out io.Writer, cons *kgo.Client, c *common, keySep string, count int, exitAtEnd bool, remaining map[int32]int64, inGroup bool) error {
	enc := json.NewEncoder(out)
	n := 0
	if exitAtEnd {
		for p, end := range remaining {
			if end == 0 {
				delete(remaining, p)
			}
		}
	}
	for ctx.Err() == nil {
		if exitAtEnd && len(remaining) == 0 {
			break
		}
		if count > 0 && n >= count {
			break
		}
		fs := cons.PollRecords(ctx, max(count-n, 0))
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			switch {
			case errors.Is(err, context.Canceled) || ferr != nil:
			case errors.Is(err, kerr.KafkaStorageError):
				ferr = fmt.Errorf("partition %s-%d: %w", topic, p, err)
			case kerr.IsRetriable(err):
				// Kept only for the storage error above: the client
				// retries these itself (a leader moving, metadata lag).
			default:
				ferr = err
			}
		})
		if ferr != nil {
			return c.brokerErr(ferr)
		}
		var werr error
		fs.EachRecord(func(r *kgo.Record) {
			if werr != nil || (count > 0 && n >= count) {
				return
			}
			n++
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
			if c.output == "json" {
				jr := JSONRecord{Topic: r.Topic, Partition: &r.Partition, Offset: &r.Offset}
				ts := r.Timestamp.UnixMilli()
				jr.Timestamp = &ts
				jr.Key, jr.KeyB64 = textOrB64(r.Key)
				jr.Value, jr.ValueB64 = textOrB64(r.Value)
				if len(r.Headers) > 0 {
					jr.Headers = map[string]string{}
					for _, h := range r.Headers {
						jr.Headers[h.Key] = string(h.Value)
					}
				}
				werr = enc.Encode(jr)
				return
			}
			var b strings.Builder
			if keySep != "" {
				b.Write(r.Key)
				b.WriteString(keySep)
			}
			b.Write(r.Value)
			b.WriteByte('\n')
			_, werr = io.WriteString(out, b.String())
		})
		if werr != nil {
			return werr
		}
	}
	if inGroup {
		cctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		if err := cons.CommitUncommittedOffsets(cctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	return nil
}
