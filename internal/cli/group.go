// Package cli holds the operator commands of the chronik binary that talk
// Kafka to any broker (-b): they work against Chronik and against Kafka.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// common are the flags every command shares.
type common struct {
	brokers string
	output  string
	timeout time.Duration
}

func (c *common) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&c.brokers, "bootstrap-server", "b", "localhost:9092", "broker(s) to talk to, comma separated")
	cmd.PersistentFlags().StringVarP(&c.output, "output", "o", "table", "output: table or json")
	cmd.PersistentFlags().DurationVar(&c.timeout, "timeout", 15*time.Second, "give up after this long")
}

// client connects; the caller closes it.
func (c *common) client(extra ...kgo.Opt) (*kgo.Client, error) {
	if c.output != "table" && c.output != "json" {
		return nil, fmt.Errorf("unknown output %q (table or json)", c.output)
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(strings.Split(c.brokers, ",")...), kgo.DialTimeout(5 * time.Second),
		kgo.RequestRetries(2), kgo.RetryTimeout(c.timeout)}, extra...)
	return kgo.NewClient(opts...)
}

// brokerErr makes "nothing answered" one clear line.
func (c *common) brokerErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "unable to dial") {
		return fmt.Errorf("no broker reachable at %s: %w", c.brokers, err)
	}
	return err
}

// NewGroupCommand is `chronik group` (alias `groups`).
func NewGroupCommand() *cobra.Command {
	var c common
	cmd := &cobra.Command{Use: "group", Aliases: []string{"groups"}, Short: "List and describe consumer groups, with their lag"}
	c.register(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List consumer groups (every broker is asked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.run(func(ctx context.Context, adm *kadm.Client, cl *kgo.Client) error {
				return listGroups(ctx, cmd.OutOrStdout(), &c, cl)
			})
		},
	}, &cobra.Command{
		Use:   "describe GROUP...",
		Short: "Describe groups: state, members, and per partition the committed offset, the end and the lag",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, groups []string) error {
			return c.run(func(ctx context.Context, adm *kadm.Client, cl *kgo.Client) error {
				var out []GroupDescription
				for _, g := range groups {
					d, err := describeGroup(ctx, adm, cl, g)
					if err != nil {
						return err
					}
					out = append(out, d)
				}
				return printDescriptions(cmd.OutOrStdout(), c.output, out)
			})
		},
	})
	cmd.AddCommand(groupAdminCommands(&c)...)
	return cmd
}

func (c *common) run(fn func(context.Context, *kadm.Client, *kgo.Client) error) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := fn(ctx, kadm.NewClient(cl), cl); err != nil {
		return c.brokerErr(err)
	}
	return nil
}

// ListedGroup is one row of `group list`.
type ListedGroup struct {
	Group        string `json:"group"`
	Type         string `json:"type"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

func listGroups(ctx context.Context, w io.Writer, c *common, cl *kgo.Client) error {
	req := kmsg.NewPtrListGroupsRequest()
	var out []ListedGroup
	for _, sh := range cl.RequestSharded(ctx, req) {
		if sh.Err != nil {
			return sh.Err
		}
		resp := sh.Resp.(*kmsg.ListGroupsResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("broker %d: %w", sh.Meta.NodeID, err)
		}
		for _, g := range resp.Groups {
			typ := g.GroupType
			if typ == "" {
				typ = "classic"
			}
			out = append(out, ListedGroup{Group: g.Group, Type: typ, State: g.GroupState, ProtocolType: g.ProtocolType, Coordinator: sh.Meta.NodeID})
		}
	}
	slices.SortFunc(out, func(a, b ListedGroup) int { return strings.Compare(a.Group, b.Group) })
	if c.output == "json" {
		if out == nil {
			out = []ListedGroup{}
		}
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTYPE\tSTATE\tPROTOCOL TYPE\tCOORDINATOR")
	for _, g := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", g.Group, g.Type, g.State, g.ProtocolType, g.Coordinator)
	}
	return tw.Flush()
}

// GroupDescription is what `group describe` shows of one group.
type GroupDescription struct {
	Group      string          `json:"group"`
	Type       string          `json:"type"`
	State      string          `json:"state"`
	Protocol   string          `json:"protocol,omitempty"`
	Members    []MemberInfo    `json:"members"`
	Partitions []PartitionInfo `json:"partitions"`
	TotalLag   int64           `json:"total_lag"`
}

// MemberInfo is one member of a group.
type MemberInfo struct {
	MemberID   string  `json:"member_id"`
	InstanceID *string `json:"instance_id,omitempty"`
	ClientID   string  `json:"client_id"`
	Host       string  `json:"host"`
}

// PartitionInfo is a group's position in one partition. Committed and Lag
// are null when the group has committed nothing there.
type PartitionInfo struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed *int64 `json:"committed"`
	End       int64  `json:"end"`
	Lag       *int64 `json:"lag"`
	MemberID  string `json:"member_id,omitempty"`
}

type tp struct {
	topic string
	part  int32
}

func describeGroup(ctx context.Context, adm *kadm.Client, cl *kgo.Client, group string) (GroupDescription, error) {
	d := GroupDescription{Group: group, Members: []MemberInfo{}, Partitions: []PartitionInfo{}}
	owners := map[tp]string{}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return d, err
	}
	dg := described[group]
	switch {
	case dg.Err == nil && dg.State != "Dead":
		d.Type, d.State, d.Protocol = "classic", dg.State, dg.Protocol
		for _, m := range dg.Members {
			d.Members = append(d.Members, MemberInfo{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.ClientHost})
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range a.Topics {
					for _, p := range t.Partitions {
						owners[tp{t.Topic, p}] = m.MemberID
					}
				}
			}
		}
	case dg.Err == nil || errors.Is(dg.Err, kerr.GroupIDNotFound):
		// Not a classic group: maybe a KIP-848 consumer group.
		req := kmsg.NewPtrConsumerGroupDescribeRequest()
		req.Groups = []string{group}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return d, err
		}
		g := resp.Groups[0]
		if e := kerr.ErrorForCode(g.ErrorCode); e != nil {
			if errors.Is(e, kerr.GroupIDNotFound) {
				return d, fmt.Errorf("group %q does not exist", group)
			}
			return d, fmt.Errorf("describe group %q: %w", group, e)
		}
		d.Type, d.State, d.Protocol = "consumer", g.State, g.AssignorName
		for _, m := range g.Members {
			d.Members = append(d.Members, MemberInfo{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.ClientHost})
			for _, t := range m.Assignment.TopicPartitions {
				for _, p := range t.Partitions {
					owners[tp{t.Topic, p}] = m.MemberID
				}
			}
		}
	default:
		return d, fmt.Errorf("describe group %q: %w", group, dg.Err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return d, fmt.Errorf("fetch offsets of %q: %w", group, err)
	}
	committed := map[tp]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			committed[tp{o.Topic, o.Partition}] = o.At
		}
	})
	topics := map[string]bool{}
	for k := range committed {
		topics[k.topic] = true
	}
	for k := range owners {
		topics[k.topic] = true
	}
	ends := map[tp]int64{}
	if len(topics) > 0 {
		names := mapsKeys(topics)
		slices.Sort(names)
		listed, err := adm.ListEndOffsets(ctx, names...)
		if err != nil {
			return d, fmt.Errorf("list end offsets: %w", err)
		}
		listed.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				ends[tp{o.Topic, o.Partition}] = o.Offset
			}
		})
	}
	all := map[tp]bool{}
	for k := range committed {
		all[k] = true
	}
	for k := range owners {
		all[k] = true
	}
	keys := mapsKeys(all)
	slices.SortFunc(keys, func(a, b tp) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.part - b.part)
	})
	for _, k := range keys {
		pi := PartitionInfo{Topic: k.topic, Partition: k.part, End: ends[k], MemberID: owners[k]}
		if c, ok := committed[k]; ok {
			lag := max(ends[k]-c, 0)
			pi.Committed, pi.Lag = &c, &lag
			d.TotalLag += lag
		}
		d.Partitions = append(d.Partitions, pi)
	}
	return d, nil
}

func mapsKeys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func printDescriptions(w io.Writer, output string, ds []GroupDescription) error {
	if output == "json" {
		return writeJSON(w, ds)
	}
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "GROUP %s  TYPE %s  STATE %s  PROTOCOL %s  MEMBERS %d  TOTAL LAG %d\n\n", d.Group, d.Type, d.State, dash(d.Protocol), len(d.Members), d.TotalLag)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
		for _, p := range d.Partitions {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\n", p.Topic, p.Partition, optional(p.Committed), p.End, optional(p.Lag), dash(p.MemberID))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(d.Members) > 0 {
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MEMBER\tINSTANCE\tCLIENT\tHOST")
			for _, m := range d.Members {
				inst := ""
				if m.InstanceID != nil {
					inst = *m.InstanceID
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.MemberID, dash(inst), m.ClientID, m.Host)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func optional(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
