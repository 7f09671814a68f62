package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupAdminCommands are `group delete` and `group reset-offsets`.
func groupAdminCommands(c *common) []*cobra.Command {
	del := &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete groups (each must be empty: no live members)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, groups []string) error {
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				resps, err := adm.DeleteGroups(ctx, groups...)
				if err != nil {
					return err
				}
				var errs []error
				for _, g := range groups {
					r, ok := resps[g]
					switch {
					case !ok:
						errs = append(errs, fmt.Errorf("delete group %q: no answer", g))
					case errors.Is(r.Err, kerr.NonEmptyGroup):
						errs = append(errs, fmt.Errorf("delete group %q: it has live members (stop them first)", g))
					case errors.Is(r.Err, kerr.GroupIDNotFound):
						errs = append(errs, fmt.Errorf("delete group %q: it does not exist", g))
					case r.Err != nil:
						errs = append(errs, fmt.Errorf("delete group %q: %w", g, r.Err))
					}
				}
				if err := errors.Join(errs...); err != nil {
					return err
				}
				return printResult(cmd.OutOrStdout(), c.output, map[string]any{"deleted": groups}, "deleted "+strings.Join(groups, ", "))
			})
		},
	}

	var (
		topic                string
		partitions           []int32
		toEarliest, toLatest bool
		toOffset, shiftBy    int64
		toDatetime           string
		execute              bool
	)
	reset := &cobra.Command{
		Use:   "reset-offsets GROUP --topic T (--to-earliest|--to-latest|--to-offset N|--to-datetime T|--shift-by N) [--execute]",
		Short: "Move a group's committed offsets (a dry run unless --execute; the group must have no live members)",
		Long: `Move a group's committed offsets on one topic, as Kafka's kafka-consumer-groups.sh --reset-offsets does.

Without --execute it only prints the plan. The group must be inactive (no live
members), otherwise its members would overwrite the new offsets.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			group := args[0]
			if topic == "" {
				return errors.New("--topic is required")
			}
			n := 0
			for _, set := range []bool{toEarliest, toLatest, cmd.Flags().Changed("to-offset"), toDatetime != "", cmd.Flags().Changed("shift-by")} {
				if set {
					n++
				}
			}
			if n != 1 {
				return errors.New("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
			}
			var at time.Time
			if toDatetime != "" {
				var err error
				if at, err = time.Parse(time.RFC3339, toDatetime); err != nil {
					return fmt.Errorf("--to-datetime %q: want RFC 3339, e.g. 2026-11-26T08:00:00Z", toDatetime)
				}
			}
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				described, err := adm.DescribeGroups(ctx, group)
				if err != nil {
					return err
				}
				if d := described[group]; d.Err == nil && d.State != "Empty" && d.State != "Dead" {
					return fmt.Errorf("group %q is %s with %d members: offsets can only be reset while it has no live members", group, d.State, len(d.Members))
				}
				starts, err := adm.ListStartOffsets(ctx, topic)
				if err != nil {
					return err
				}
				ends, err := adm.ListEndOffsets(ctx, topic)
				if err != nil {
					return err
				}
				if err := ends.Error(); err != nil {
					if errors.Is(err, kerr.UnknownTopicOrPartition) {
						return fmt.Errorf("topic %q does not exist", topic)
					}
					return err
				}
				var byTime kadm.ListedOffsets
				if !at.IsZero() {
					if byTime, err = adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), topic); err != nil {
						return err
					}
				}
				current, err := adm.FetchOffsets(ctx, group)
				if err != nil {
					return err
				}
				plan := []ResetRow{}
				next := kadm.Offsets{}
				var perr error
				ends.Each(func(e kadm.ListedOffset) {
					if len(partitions) > 0 && !slices.Contains(partitions, e.Partition) {
						return
					}
					start, _ := starts.Lookup(topic, e.Partition)
					row := ResetRow{Topic: topic, Partition: e.Partition}
					if o, ok := current.Lookup(topic, e.Partition); ok && o.Err == nil && o.At >= 0 {
						v := o.At
						row.Current = &v
					}
					switch {
					case toEarliest:
						row.New = start.Offset
					case toLatest:
						row.New = e.Offset
					case cmd.Flags().Changed("to-offset"):
						row.New = toOffset
					case !at.IsZero():
						o, _ := byTime.Lookup(topic, e.Partition)
						row.New = o.Offset
					default:
						if row.Current == nil {
							perr = fmt.Errorf("partition %d: the group has no committed offset to shift", e.Partition)
							return
						}
						row.New = *row.Current + shiftBy
					}
					// Kafka clamps a reset into the partition's range.
					row.New = min(max(row.New, start.Offset), e.Offset)
					plan = append(plan, row)
					next.Add(kadm.Offset{Topic: topic, Partition: e.Partition, At: row.New, LeaderEpoch: -1})
				})
				if perr != nil {
					return perr
				}
				if len(plan) == 0 {
					return fmt.Errorf("topic %q has none of partitions %v", topic, partitions)
				}
				slices.SortFunc(plan, func(a, b ResetRow) int { return int(a.Partition - b.Partition) })
				if execute {
					resp, err := adm.CommitOffsets(ctx, group, next)
					if err != nil {
						return err
					}
					if err := resp.Error(); err != nil {
						return fmt.Errorf("commit new offsets of %q: %w", group, err)
					}
				}
				return printReset(cmd.OutOrStdout(), c.output, group, plan, execute)
			})
		},
	}
	f := reset.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic whose offsets move")
	f.Int32SliceVar(&partitions, "partitions", nil, "only these partitions (default: all)")
	f.BoolVar(&toEarliest, "to-earliest", false, "to each partition's log start")
	f.BoolVar(&toLatest, "to-latest", false, "to each partition's end (skip everything)")
	f.Int64Var(&toOffset, "to-offset", 0, "to this offset")
	f.StringVar(&toDatetime, "to-datetime", "", "to the first offset at or after this time (RFC 3339)")
	f.Int64Var(&shiftBy, "shift-by", 0, "move the committed offsets by N (negative: back)")
	f.BoolVar(&execute, "execute", false, "commit the new offsets (default: print the plan only)")
	return []*cobra.Command{del, reset}
}

// ResetRow is one partition of a reset plan.
type ResetRow struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   *int64 `json:"current"`
	New       int64  `json:"new"`
}

func printReset(w io.Writer, output, group string, plan []ResetRow, executed bool) error {
	if output == "json" {
		return writeJSON(w, map[string]any{"group": group, "executed": executed, "partitions": plan})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW")
	for _, r := range plan {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", r.Topic, r.Partition, optional(r.Current), r.New)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !executed {
		_, err := fmt.Fprintln(w, "(dry run: add --execute to commit these offsets)")
		return err
	}
	_, err := fmt.Fprintf(w, "committed the new offsets of group %s\n", group)
	return err
}
