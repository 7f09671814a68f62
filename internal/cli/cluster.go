package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ClusterInfo is what `cluster info` shows.
type ClusterInfo struct {
	ClusterID  string       `json:"cluster_id"`
	Controller int32        `json:"controller"`
	Brokers    []BrokerInfo `json:"brokers"`
	Topics     int          `json:"topics"`
	Partitions int          `json:"partitions"`
	// Leaders counts the partitions each broker leads.
	Leaders map[int32]int `json:"leaders"`
	// UnderReplicated lists partitions with fewer in-sync replicas than
	// replicas, or without a leader (offline).
	UnderReplicated []PartitionState `json:"under_replicated"`
}

// PartitionState is one partition's leader, replicas and in-sync replicas.
type PartitionState struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
}

// BrokerInfo is one broker of the cluster.
type BrokerInfo struct {
	ID   int32   `json:"id"`
	Host string  `json:"host"`
	Port int32   `json:"port"`
	Rack *string `json:"rack,omitempty"`
}

// NewClusterCommand is `chronik cluster info`.
func NewClusterCommand() *cobra.Command {
	var c common
	cmd := &cobra.Command{Use: "cluster", Short: "Show the cluster: id, controller, brokers, partition leaders"}
	c.register(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "Cluster id, controller, brokers and how many partitions each leads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.run(func(ctx context.Context, adm *kadm.Client, _ *kgo.Client) error {
				md, err := adm.Metadata(ctx)
				if err != nil {
					return err
				}
				info := ClusterInfo{ClusterID: md.Cluster, Controller: md.Controller, Leaders: map[int32]int{}}
				for _, b := range md.Brokers {
					info.Brokers = append(info.Brokers, BrokerInfo{ID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack})
					info.Leaders[b.NodeID] = 0
				}
				slices.SortFunc(info.Brokers, func(a, b BrokerInfo) int { return int(a.ID - b.ID) })
				for _, t := range md.Topics {
					info.Topics++
					for _, p := range t.Partitions {
						info.Partitions++
						if p.Leader >= 0 {
							info.Leaders[p.Leader]++
						}
						if p.Leader < 0 || len(p.ISR) < len(p.Replicas) {
							info.UnderReplicated = append(info.UnderReplicated, PartitionState{Topic: t.Topic, Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR})
						}
					}
				}
				slices.SortFunc(info.UnderReplicated, func(a, b PartitionState) int {
					if a.Topic != b.Topic {
						return strings.Compare(a.Topic, b.Topic)
					}
					return int(a.Partition - b.Partition)
				})
				w := cmd.OutOrStdout()
				if c.output == "json" {
					return writeJSON(w, info)
				}
				fmt.Fprintf(w, "CLUSTER %s  CONTROLLER %d  TOPICS %d  PARTITIONS %d\n\n", info.ClusterID, info.Controller, info.Topics, info.Partitions)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "BROKER\tHOST\tPORT\tRACK\tLEADS")
				for _, b := range info.Brokers {
					rack := "-"
					if b.Rack != nil {
						rack = *b.Rack
					}
					fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\n", b.ID, b.Host, b.Port, rack, info.Leaders[b.ID])
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(info.UnderReplicated) == 0 {
					fmt.Fprintln(w, "\nno under-replicated partitions")
					return nil
				}
				fmt.Fprintf(w, "\nUNDER-REPLICATED PARTITIONS %d\n", len(info.UnderReplicated))
				tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tREPLICAS\tISR")
				for _, p := range info.UnderReplicated {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%v\t%v\n", p.Topic, p.Partition, p.Leader, p.Replicas, p.ISR)
				}
				return tw.Flush()
			})
		},
	})
	return cmd
}
