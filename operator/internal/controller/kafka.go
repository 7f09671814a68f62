package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaTimeout bounds every Kafka conversation of one reconciliation.
const kafkaTimeout = 20 * time.Second

// newAdmin opens a Kafka admin client on bootstrap addresses. The caller
// closes it.
func newAdmin(bootstrap []string) (*kadm.Client, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.ClientID("chronik-operator"),
		kgo.RequestRetries(2),
		kgo.RetryTimeout(10*time.Second),
		kgo.DialTimeout(5*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", strings.Join(bootstrap, ","), err)
	}
	return kadm.NewClient(cl), nil
}

// clusterHealth is the replication state the brokers report in Metadata.
type clusterHealth struct {
	Brokers    []int32 // node ids in the Metadata answer
	Controller int32   // -1 when none
	Total      int32   // partitions, internal topics included
	// UnderReplicated counts partitions with fewer in-sync replicas than
	// replicas; Offline those without a leader.
	UnderReplicated int32
	Offline         int32
	// Example names one unhealthy partition for messages.
	Example string
}

// inSync reports whether every partition has a leader and all its replicas in sync.
func (h clusterHealth) inSync() bool { return h.UnderReplicated == 0 && h.Offline == 0 }

// describeHealth asks the brokers for Metadata of every topic.
func describeHealth(ctx context.Context, bootstrap []string) (clusterHealth, error) {
	adm, err := newAdmin(bootstrap)
	if err != nil {
		return clusterHealth{}, err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return clusterHealth{}, fmt.Errorf("metadata from %s: %w", strings.Join(bootstrap, ","), err)
	}
	h := clusterHealth{Controller: md.Controller}
	for _, b := range md.Brokers {
		h.Brokers = append(h.Brokers, b.NodeID)
	}
	slices.Sort(h.Brokers)
	for _, t := range md.Topics {
		if t.Err != nil {
			h.Offline++
			h.Example = fmt.Sprintf("topic %s: %v", t.Topic, t.Err)
			continue
		}
		for _, p := range t.Partitions {
			h.Total++
			switch {
			case p.Leader < 0 || (p.Err != nil && !errors.Is(p.Err, kerr.ReplicaNotAvailable)):
				h.Offline++
				h.Example = fmt.Sprintf("%s-%d has no leader", t.Topic, p.Partition)
			case len(p.ISR) < len(p.Replicas):
				h.UnderReplicated++
				h.Example = fmt.Sprintf("%s-%d has %d of %d replicas in sync", t.Topic, p.Partition, len(p.ISR), len(p.Replicas))
			}
		}
	}
	return h, nil
}
