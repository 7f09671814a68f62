package controller

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// readyPod creates a pod with the given labels and marks it Ready, as a
// kubelet would (no kubelet runs here).
func readyPod(t *testing.T, ns, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "chronik", Image: "chronik"}}},
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: "10.0.0." + strconv.Itoa(len(name)),
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
	}
	if err := k8s.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// TestStandaloneRunning: once the broker's pod is Ready the standalone is
// Running and healthy.
func TestStandaloneRunning(t *testing.T) {
	ctx := context.Background()
	s := &chronikv1.ChronikStandalone{ObjectMeta: metav1.ObjectMeta{Name: "up", Namespace: "standalone"}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	readyPod(t, "standalone", "up-0", selectorFor("up", ComponentStandalone))
	eventually(t, 2*time.Minute, "Running", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			return err
		}
		if s.Status.Phase != "Running" || !s.Status.Healthy {
			return fmt.Errorf("status %+v", s.Status)
		}
		if err := wantCondition(s.Status.Conditions, "Ready", metav1.ConditionTrue, "Ready"); err != nil {
			return err
		}
		return wantCondition(s.Status.Conditions, "Degraded", metav1.ConditionFalse, "AsExpected")
	})
}

// TestClusterPods: ready broker pods are counted and listed with their
// node ids and labelled with them; with no broker answering Metadata the
// cluster is not Ready and says why.
func TestClusterPods(t *testing.T) {
	ctx := context.Background()
	c := &chronikv1.ChronikCluster{ObjectMeta: metav1.ObjectMeta{Name: "pods", Namespace: "cluster"}}
	if err := k8s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	labels := labelsFor("pods", ComponentCluster)
	for i := range 3 {
		readyPod(t, "cluster", fmt.Sprintf("pods-%d", i), labels)
	}
	eventually(t, 2*time.Minute, "pods in status", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(c), c); err != nil {
			return err
		}
		if c.Status.ReadyNodes != 3 || len(c.Status.Nodes) != 3 {
			return fmt.Errorf("status %+v", c.Status)
		}
		for i, n := range c.Status.Nodes {
			if n.NodeID != int32(i+1) || n.PodName != fmt.Sprintf("pods-%d", i) || !n.Ready || n.PodIP == "" {
				return fmt.Errorf("node %d: %+v", i, n)
			}
		}
		return wantCondition(c.Status.Conditions, "Ready", metav1.ConditionFalse, "BrokersUnreachable")
	})
	for i := range 3 {
		var p corev1.Pod
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "cluster", Name: fmt.Sprintf("pods-%d", i)}, &p); err != nil {
			t.Fatal(err)
		}
		if p.Labels[LabelNodeID] != strconv.Itoa(i+1) {
			t.Fatalf("pod %s labels %v", p.Name, p.Labels)
		}
	}
}
