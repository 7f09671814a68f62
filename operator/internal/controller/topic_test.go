package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// TestTopicLifecycle reconciles ChronikTopics against a real broker run
// from the config the operator generated for a ChronikStandalone.
func TestTopicLifecycle(t *testing.T) {
	ctx := brokerContext(t)
	s := &chronikv1.ChronikStandalone{ObjectMeta: metav1.ObjectMeta{Name: "kafka", Namespace: "topic"}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	eventually(t, time.Minute, "ConfigMap", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: "topic", Name: "kafka-config"}, &cm)
	})
	addr, metricsAddr := startBroker(t, cm.Data[standaloneConfigKey])
	bootstraps.Store("topic/kafka", addr)
	adm, err := newAdmin([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ref := chronikv1.ClusterRef{Name: "kafka", Kind: "ChronikStandalone"}

	// Create with partitions and a config.
	orders := &chronikv1.ChronikTopic{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "topic"},
		Spec: chronikv1.ChronikTopicSpec{ClusterRef: ref, TopicName: "shop.orders", Partitions: 3, ReplicationFactor: 1,
			Config: map[string]string{"retention.ms": "3600000"}},
	}
	if err := k8s.Create(ctx, orders); err != nil {
		t.Fatal(err)
	}
	waitTopic(t, "orders", func(tp *chronikv1.ChronikTopic) error {
		if tp.Status.Phase != "Ready" || tp.Status.CurrentPartitions != 3 || tp.Status.CurrentReplicationFactor != 1 || tp.Status.TopicID == "" {
			return fmt.Errorf("status %+v", tp.Status)
		}
		return wantCondition(tp.Status.Conditions, "Ready", metav1.ConditionTrue, "Ready")
	})
	if n := kafkaPartitions(t, adm, "shop.orders"); n != 3 {
		t.Fatalf("Kafka has %d partitions", n)
	}
	if v, dyn := kafkaConfig(t, adm, "shop.orders", "retention.ms"); v != "3600000" || !dyn {
		t.Fatalf("retention.ms = %q (dynamic %t)", v, dyn)
	}

	// The autoscaler's produce observation reads what the broker counts.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("shop.orders"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint("order ", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	received, err := (&AutoScalerReconciler{Env: &Env{}}).scrape(ctx, "http://"+metricsAddr+"/metrics", "chronik_messages_received_total")
	if err != nil || received < 25 {
		t.Fatalf("chronik_messages_received_total = %v (%v), want at least 25", received, err)
	}

	// Grow partitions, change one config, add another.
	if err := updateTopic(ctx, client.ObjectKeyFromObject(orders), func(tp *chronikv1.ChronikTopic) {
		tp.Spec.Partitions = 5
		tp.Spec.Config = map[string]string{"retention.ms": "7200000", "max.message.bytes": "2097152"}
	}); err != nil {
		t.Fatal(err)
	}
	waitTopic(t, "orders", func(tp *chronikv1.ChronikTopic) error {
		if tp.Status.CurrentPartitions != 5 || tp.Status.ObservedGeneration != tp.Generation {
			return fmt.Errorf("status %+v", tp.Status)
		}
		return nil
	})
	eventually(t, time.Minute, "Kafka sees the change", func() error {
		if n := kafkaPartitions(t, adm, "shop.orders"); n != 5 {
			return fmt.Errorf("%d partitions", n)
		}
		if v, _ := kafkaConfig(t, adm, "shop.orders", "retention.ms"); v != "7200000" {
			return fmt.Errorf("retention.ms %q", v)
		}
		if v, _ := kafkaConfig(t, adm, "shop.orders", "max.message.bytes"); v != "2097152" {
			return fmt.Errorf("max.message.bytes %q", v)
		}
		return nil
	})

	// A config the spec no longer names goes back to the broker's default.
	if err := updateTopic(ctx, client.ObjectKeyFromObject(orders), func(tp *chronikv1.ChronikTopic) {
		tp.Spec.Config = map[string]string{"max.message.bytes": "2097152"}
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "retention.ms removed", func() error {
		if v, dyn := kafkaConfig(t, adm, "shop.orders", "retention.ms"); dyn || v == "7200000" {
			return fmt.Errorf("retention.ms still %q (dynamic %t)", v, dyn)
		}
		return nil
	})

	// Kafka's refusals land in the status with Kafka's error.
	for _, tc := range []struct {
		name, want string
		spec       chronikv1.ChronikTopicSpec
	}{
		{"bad-config", "INVALID_CONFIG", chronikv1.ChronikTopicSpec{ClusterRef: ref, Partitions: 1, ReplicationFactor: 1,
			Config: map[string]string{"cleanup.policy": "shred"}}},
		{"too-many-replicas", "INVALID_REPLICATION_FACTOR", chronikv1.ChronikTopicSpec{ClusterRef: ref, Partitions: 1, ReplicationFactor: 3}},
	} {
		bad := &chronikv1.ChronikTopic{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: "topic"}, Spec: tc.spec}
		if err := k8s.Create(ctx, bad); err != nil {
			t.Fatal(err)
		}
		waitTopic(t, tc.name, func(tp *chronikv1.ChronikTopic) error {
			if tp.Status.Phase != "Error" {
				return fmt.Errorf("phase %q", tp.Status.Phase)
			}
			c, err := condition(tp.Status.Conditions, "Degraded")
			if err != nil || c.Status != metav1.ConditionTrue || c.Reason != "CreateTopicFailed" || !strings.Contains(c.Message, tc.want) {
				return fmt.Errorf("Degraded %+v %w, want CreateTopicFailed with %s", c, err, tc.want)
			}
			return nil
		})
		if n := kafkaPartitions(t, adm, tc.name); n != 0 {
			t.Fatalf("%s exists in Kafka with %d partitions", tc.name, n)
		}
	}

	// deletionPolicy retain keeps the Kafka topic; delete removes it.
	kept := &chronikv1.ChronikTopic{
		ObjectMeta: metav1.ObjectMeta{Name: "audit", Namespace: "topic"},
		Spec:       chronikv1.ChronikTopicSpec{ClusterRef: ref, Partitions: 2, ReplicationFactor: 1, DeletionPolicy: "retain"},
	}
	if err := k8s.Create(ctx, kept); err != nil {
		t.Fatal(err)
	}
	waitTopic(t, "audit", func(tp *chronikv1.ChronikTopic) error {
		if tp.Status.Phase != "Ready" {
			return fmt.Errorf("status %+v", tp.Status)
		}
		return nil
	})
	for _, tp := range []*chronikv1.ChronikTopic{orders, kept} {
		if err := k8s.Delete(ctx, tp); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, tp.Name+" deleted", func() error {
			err := k8s.Get(ctx, client.ObjectKeyFromObject(tp), &chronikv1.ChronikTopic{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there: %w", err)
		})
	}
	// Metadata may show a deleted topic for a moment, as in Kafka.
	eventually(t, 30*time.Second, "deletionPolicy delete removes shop.orders", func() error {
		if n := kafkaPartitions(t, adm, "shop.orders"); n != 0 {
			return fmt.Errorf("shop.orders still has %d partitions", n)
		}
		return nil
	})
	if n := kafkaPartitions(t, adm, "audit"); n != 2 {
		t.Fatalf("deletionPolicy retain: audit has %d partitions", n)
	}

	// A topic of a cluster that does not exist says so, and can be deleted.
	orphan := &chronikv1.ChronikTopic{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "topic"},
		Spec:       chronikv1.ChronikTopicSpec{ClusterRef: chronikv1.ClusterRef{Name: "missing"}},
	}
	if err := k8s.Create(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	waitTopic(t, "orphan", func(tp *chronikv1.ChronikTopic) error {
		return wantCondition(tp.Status.Conditions, "Degraded", metav1.ConditionTrue, "ClusterNotFound")
	})
	if err := k8s.Delete(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "orphan deleted", func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(orphan), &chronikv1.ChronikTopic{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %w", err)
	})
}

func waitTopic(t *testing.T, name string, check func(*chronikv1.ChronikTopic) error) {
	t.Helper()
	eventually(t, 90*time.Second, "topic "+name, func() error {
		var tp chronikv1.ChronikTopic
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: "topic", Name: name}, &tp); err != nil {
			return err
		}
		return check(&tp)
	})
}

// kafkaPartitions is the topic's partition count as the broker reports
// it, 0 when the topic does not exist.
func kafkaPartitions(t *testing.T, adm *kadm.Client, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := describeTopic(ctx, adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	if td == nil {
		return 0
	}
	return len(td.Partitions)
}

// kafkaConfig is a topic config's value and whether it is a topic override.
func kafkaConfig(t *testing.T, adm *kadm.Client, topic, key string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		t.Fatal(errors.Join(err, errors.New(rc.ErrMessage)))
	}
	for _, c := range rc.Configs {
		if c.Key == key && c.Value != nil {
			return *c.Value, c.Source == kmsg.ConfigSourceDynamicTopicConfig
		}
	}
	return "", false
}
