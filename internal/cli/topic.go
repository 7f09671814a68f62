package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NewTopicCommand is `chronik topic` (alias `topics`).
func NewTopicCommand() *cobra.Command {
	var c common
	cmd := &cobra.Command{Use: "topic", Aliases: []string{"topics"}, Short: "Create, list, describe, alter and delete topics"}
	c.register(cmd)

	var partitions int32
	var replicas int16
	var configs []string
	var ifNotExists bool
	create := &cobra.Command{
		Use:   "create TOPIC",
		Short: "Create a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfgs, err := parseConfigs(configs)
			if err != nil {
				return err
			}
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				resp, err := adm.CreateTopic(ctx, partitions, replicas, cfgs, args[0])
				if err == nil {
					err = resp.Err
				}
				if errors.Is(err, kerr.TopicAlreadyExists) && ifNotExists {
					err = nil
				}
				if err != nil {
					return fmt.Errorf("create topic %q: %w", args[0], err)
				}
				return printResult(cmd.OutOrStdout(), c.output, map[string]any{"topic": args[0], "created": true, "partitions": partitions, "replication_factor": replicas},
					fmt.Sprintf("created topic %s", args[0]))
			})
		},
	}
	create.Flags().Int32VarP(&partitions, "partitions", "p", 1, "partitions")
	create.Flags().Int16VarP(&replicas, "replication-factor", "r", -1, "replicas of each partition (-1: the broker's default)")
	create.Flags().StringArrayVarP(&configs, "config", "c", nil, "topic config key=value (repeatable)")
	create.Flags().BoolVar(&ifNotExists, "if-not-exists", false, "succeed when the topic exists")

	var internal bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List topics with their partition counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				td, err := adm.ListTopicsWithInternal(ctx)
				if err != nil {
					return err
				}
				type row struct {
					Topic       string `json:"topic"`
					ID          string `json:"id"`
					Partitions  int    `json:"partitions"`
					Replication int    `json:"replication_factor"`
					Internal    bool   `json:"internal"`
				}
				rows := []row{}
				for _, t := range td.Sorted() {
					if t.IsInternal && !internal {
						continue
					}
					rf := 0
					for _, p := range t.Partitions {
						rf = max(rf, len(p.Replicas))
					}
					rows = append(rows, row{Topic: t.Topic, ID: t.ID.String(), Partitions: len(t.Partitions), Replication: rf, Internal: t.IsInternal})
				}
				if c.output == "json" {
					return writeJSON(cmd.OutOrStdout(), rows)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tID")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.Topic, r.Partitions, r.Replication, r.ID)
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&internal, "internal", false, "include internal topics (__consumer_offsets)")

	describe := &cobra.Command{
		Use:   "describe TOPIC...",
		Short: "Describe topics: partitions with leaders, replicas, ISR and offsets; configs that differ from the defaults",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, topics []string) error {
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				ds, err := describeTopics(ctx, adm, topics)
				if err != nil {
					return err
				}
				if c.output == "json" {
					return writeJSON(cmd.OutOrStdout(), ds)
				}
				printTopics(cmd.OutOrStdout(), ds)
				return nil
			})
		},
	}

	var setConfigs, deleteConfigs []string
	var newPartitions int
	alter := &cobra.Command{
		Use:   "alter TOPIC",
		Short: "Change a topic's configs (--config k=v, --delete-config k) or grow its partitions (--partitions N)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			set, err := parseConfigs(setConfigs)
			if err != nil {
				return err
			}
			if len(set) == 0 && len(deleteConfigs) == 0 && newPartitions == 0 {
				return errors.New("nothing to change: give --config, --delete-config or --partitions")
			}
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				var changes []string
				if len(set) > 0 || len(deleteConfigs) > 0 {
					var ac []kadm.AlterConfig
					for _, k := range slices.Sorted(maps.Keys(set)) {
						ac = append(ac, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: set[k]})
						changes = append(changes, fmt.Sprintf("%s=%s", k, *set[k]))
					}
					for _, k := range deleteConfigs {
						ac = append(ac, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
						changes = append(changes, k+" reset to its default")
					}
					resps, err := adm.AlterTopicConfigs(ctx, ac, topic)
					if err != nil {
						return err
					}
					for _, r := range resps {
						if r.Err != nil {
							return fmt.Errorf("alter configs of %q: %w%s", topic, r.Err, errMessage(r.ErrMessage))
						}
					}
				}
				if newPartitions > 0 {
					resps, err := adm.UpdatePartitions(ctx, newPartitions, topic)
					if err != nil {
						return err
					}
					if r, ok := resps[topic]; ok && r.Err != nil {
						return fmt.Errorf("set partitions of %q to %d: %w%s", topic, newPartitions, r.Err, errMessage(r.ErrMessage))
					}
					changes = append(changes, fmt.Sprintf("partitions=%d", newPartitions))
				}
				return printResult(cmd.OutOrStdout(), c.output, map[string]any{"topic": topic, "changes": changes},
					fmt.Sprintf("altered topic %s: %s", topic, strings.Join(changes, ", ")))
			})
		},
	}
	alter.Flags().StringArrayVarP(&setConfigs, "config", "c", nil, "set key=value (repeatable)")
	alter.Flags().StringArrayVar(&deleteConfigs, "delete-config", nil, "reset key to its default (repeatable)")
	alter.Flags().IntVarP(&newPartitions, "partitions", "p", 0, "grow to this many partitions")

	del := &cobra.Command{
		Use:   "delete TOPIC...",
		Short: "Delete topics",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, topics []string) error {
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				resps, err := adm.DeleteTopics(ctx, topics...)
				if err != nil {
					return err
				}
				var errs []error
				for _, t := range topics {
					if r, ok := resps[t]; ok && r.Err != nil {
						errs = append(errs, fmt.Errorf("delete topic %q: %w%s", t, r.Err, errMessage(r.ErrMessage)))
					}
				}
				if err := errors.Join(errs...); err != nil {
					return err
				}
				return printResult(cmd.OutOrStdout(), c.output, map[string]any{"deleted": topics}, "deleted "+strings.Join(topics, ", "))
			})
		},
	}
	cmd.AddCommand(create, list, describe, alter, del)
	return cmd
}

func errMessage(m string) string {
	if m == "" {
		return ""
	}
	return " (" + m + ")"
}

// parseConfigs reads key=value pairs.
func parseConfigs(kvs []string) (map[string]*string, error) {
	out := map[string]*string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("config %q is not key=value", kv)
		}
		out[k] = &v
	}
	return out, nil
}

// printResult prints a one-line result, or v as JSON.
func printResult(w io.Writer, output string, v any, line string) error {
	if output == "json" {
		return writeJSON(w, v)
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// TopicDescription is what `topic describe` shows.
type TopicDescription struct {
	Topic      string            `json:"topic"`
	ID         string            `json:"id"`
	Internal   bool              `json:"internal"`
	Partitions []TopicPartition  `json:"partitions"`
	Configs    map[string]string `json:"configs"` // those not at their default
}

// TopicPartition is one partition of a described topic.
type TopicPartition struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Start       int64   `json:"start_offset"`
	End         int64   `json:"end_offset"`
	Error       string  `json:"error,omitempty"`
}

func describeTopics(ctx context.Context, adm *kadm.Client, topics []string) ([]TopicDescription, error) {
	td, err := adm.ListTopicsWithInternal(ctx, topics...)
	if err != nil {
		return nil, err
	}
	for _, t := range topics {
		d, ok := td[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("topic %q does not exist", t)
		}
		if d.Err != nil {
			return nil, fmt.Errorf("describe topic %q: %w", t, d.Err)
		}
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, err
	}
	var out []TopicDescription
	for _, name := range topics {
		t := td[name]
		d := TopicDescription{Topic: name, ID: t.ID.String(), Internal: t.IsInternal, Configs: map[string]string{}}
		for _, p := range t.Partitions.Sorted() {
			tp := TopicPartition{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR}
			if p.Err != nil {
				tp.Error = p.Err.Error()
			}
			if o, ok := starts.Lookup(name, p.Partition); ok {
				tp.Start = o.Offset
			}
			if o, ok := ends.Lookup(name, p.Partition); ok {
				tp.End = o.Offset
			}
			d.Partitions = append(d.Partitions, tp)
		}
		for _, rc := range cfgs {
			if rc.Name != name {
				continue
			}
			for _, c := range rc.Configs {
				if c.Source != 5 && c.Value != nil { // 5: DEFAULT_CONFIG
					d.Configs[c.Key] = *c.Value
				}
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func printTopics(w io.Writer, ds []TopicDescription) {
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "TOPIC %s  ID %s  PARTITIONS %d\n", d.Topic, d.ID, len(d.Partitions))
		if len(d.Configs) > 0 {
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(d.Configs)) {
				kv = append(kv, k+"="+d.Configs[k])
			}
			fmt.Fprintf(w, "CONFIGS %s\n", strings.Join(kv, " "))
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tSTART\tEND")
		for _, p := range d.Partitions {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%d\t%d\n", p.Partition, p.Leader, p.LeaderEpoch, ints(p.Replicas), ints(p.ISR), p.Start, p.End)
		}
		_ = tw.Flush()
	}
}

func ints(v []int32) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}
