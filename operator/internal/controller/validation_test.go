package controller

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// TestValidationRejects checks that the API server refuses invalid
// resources with a message that names the problem, and stores nothing.
func TestValidationRejects(t *testing.T) {
	ctx := context.Background()
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "validation"} }
	q := resource.MustParse("0")
	cases := []struct {
		name string
		obj  client.Object
		want string
	}{
		{"cluster of two", &chronikv1.ChronikCluster{ObjectMeta: meta("two"), Spec: chronikv1.ChronikClusterSpec{Replicas: 2}},
			"spec.replicas: Invalid value: 2: spec.replicas in body should be greater than or equal to 3"},
		{"rf above replicas", &chronikv1.ChronikCluster{ObjectMeta: meta("rf"), Spec: chronikv1.ChronikClusterSpec{Replicas: 3, ReplicationFactor: 5}},
			"replicationFactor cannot exceed replicas"},
		{"min isr above rf", &chronikv1.ChronikCluster{ObjectMeta: meta("isr"), Spec: chronikv1.ChronikClusterSpec{ReplicationFactor: 2, MinInsyncReplicas: 3}},
			"minInsyncReplicas cannot exceed replicationFactor"},
		{"unknown wal profile", &chronikv1.ChronikCluster{ObjectMeta: meta("wal"), Spec: chronikv1.ChronikClusterSpec{BrokerSpec: chronikv1.BrokerSpec{WALProfile: "fast"}}},
			`spec.walProfile: Unsupported value: "fast"`},
		{"listener on the raft port", &chronikv1.ChronikCluster{ObjectMeta: meta("ports"), Spec: chronikv1.ChronikClusterSpec{Listeners: []chronikv1.Listener{{Name: "a", Port: 5001}}}},
			"a listener port collides with walPort, raftPort or metricsPort"},
		{"two restarts at once", &chronikv1.ChronikCluster{ObjectMeta: meta("roll"), Spec: chronikv1.ChronikClusterSpec{UpdateStrategy: &chronikv1.UpdateStrategy{MaxUnavailable: 2}}},
			"spec.updateStrategy.maxUnavailable: Invalid value: 2"},
		{"zero-size volume", &chronikv1.ChronikStandalone{ObjectMeta: meta("zero"), Spec: chronikv1.ChronikStandaloneSpec{BrokerSpec: chronikv1.BrokerSpec{Storage: chronikv1.StorageSpec{Size: &q}}}},
			"size must be greater than zero"},
		{"env with value and secret", &chronikv1.ChronikStandalone{ObjectMeta: meta("env"), Spec: chronikv1.ChronikStandaloneSpec{BrokerSpec: chronikv1.BrokerSpec{Env: []chronikv1.EnvVar{{
			Name: "X", Value: ptr.To("1"), ValueFromSecret: &chronikv1.SecretKeyRef{Name: "s", Key: "k"}}}}}},
			"give exactly one of value and valueFromSecret"},
		{"topic name", &chronikv1.ChronikTopic{ObjectMeta: meta("bad"), Spec: chronikv1.ChronikTopicSpec{ClusterRef: chronikv1.ClusterRef{Name: "c"}, TopicName: "a/b"}},
			"spec.topicName: Invalid value"},
		{"unknown auth type", &chronikv1.ChronikUser{ObjectMeta: meta("auth"), Spec: chronikv1.ChronikUserSpec{ClusterRef: chronikv1.ClusterRef{Name: "c"}, Authentication: chronikv1.UserAuthentication{Type: "kerberos"}}},
			`spec.authentication.type: Unsupported value: "kerberos"`},
		{"autoscaler min above max", &chronikv1.ChronikAutoScaler{ObjectMeta: meta("minmax"), Spec: chronikv1.ChronikAutoScalerSpec{
			ClusterRef: chronikv1.AutoScalerClusterRef{Name: "c"}, MinReplicas: 9, MaxReplicas: 5,
			Metrics: []chronikv1.ScalingMetric{{MetricType: "cpu", TargetValue: resource.MustParse("70")}}}},
			"minReplicas cannot exceed maxReplicas"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := k8s.Create(ctx, tc.obj)
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", tc.want)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want Invalid containing %q", err, tc.want)
			}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(tc.obj), tc.obj); !apierrors.IsNotFound(err) {
				t.Fatalf("rejected object was stored: %v", err)
			}
		})
	}
}

// TestValidationTransitions checks the rules on changes: a topic's
// partitions only grow, its name, cluster and replication factor stay.
func TestValidationTransitions(t *testing.T) {
	ctx := context.Background()
	topic := &chronikv1.ChronikTopic{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "validation"},
		Spec:       chronikv1.ChronikTopicSpec{ClusterRef: chronikv1.ClusterRef{Name: "nowhere"}, Partitions: 6},
	}
	if err := k8s.Create(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if topic.Spec.ReplicationFactor != 3 || topic.Spec.DeletionPolicy != "delete" || topic.Spec.ClusterRef.Kind != "ChronikCluster" {
		t.Fatalf("defaults not applied: %+v", topic.Spec)
	}
	for _, tc := range []struct {
		name   string
		change func(*chronikv1.ChronikTopic)
		want   string
	}{
		{"shrink partitions", func(t *chronikv1.ChronikTopic) { t.Spec.Partitions = 3 }, "partitions can only be increased"},
		{"rename", func(t *chronikv1.ChronikTopic) { t.Spec.TopicName = "other" }, "topicName cannot be changed"},
		{"move cluster", func(t *chronikv1.ChronikTopic) { t.Spec.ClusterRef.Name = "elsewhere" }, "clusterRef cannot be changed"},
		{"change rf", func(t *chronikv1.ChronikTopic) { t.Spec.ReplicationFactor = 1 }, "replicationFactor cannot be changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := updateTopic(ctx, client.ObjectKeyFromObject(topic), tc.change)
			if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("update error %v; want Invalid containing %q", err, tc.want)
			}
		})
	}
	// Growing is fine.
	if err := updateTopic(ctx, client.ObjectKeyFromObject(topic), func(t *chronikv1.ChronikTopic) { t.Spec.Partitions = 12 }); err != nil {
		t.Fatalf("growing partitions refused: %v", err)
	}
}

// updateTopic changes a topic's spec, retrying when the operator wrote in between.
func updateTopic(ctx context.Context, key client.ObjectKey, change func(*chronikv1.ChronikTopic)) error {
	for {
		var cur chronikv1.ChronikTopic
		if err := k8s.Get(ctx, key, &cur); err != nil {
			return err
		}
		change(&cur)
		err := k8s.Update(ctx, &cur)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}
