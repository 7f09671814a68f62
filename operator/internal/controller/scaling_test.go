package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

func TestDecideScale(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	v := func(f float64) *float64 { return &f }
	base := func(mod func(*scaleInput)) scaleInput {
		in := scaleInput{Current: 3, Min: 3, Max: 9, UpCount: 3, DownCount: 6,
			UpCooldown: 10 * time.Minute, DownCoolDn: 30 * time.Minute, Now: now,
			Observations: []observation{{Type: "cpu", Target: 70, Tolerance: 0.1}}}
		mod(&in)
		return in
	}
	for _, tc := range []struct {
		name      string
		in        scaleInput
		desired   int32
		scale     bool
		up, down  int32
		reasonHas string
	}{
		{"within tolerance", base(func(in *scaleInput) { in.Observations[0].Current = v(75) }), 3, false, 0, 0, "within its tolerance"},
		{"first ask to grow", base(func(in *scaleInput) { in.Observations[0].Current = v(140) }), 6, false, 1, 0, "asked 1 of 3"},
		{"stabilized growth", base(func(in *scaleInput) { in.Observations[0].Current = v(140); in.UpStreak = 2 }), 6, true, 0, 0, "scale up from 3 to 6"},
		{"growth in cooldown", base(func(in *scaleInput) {
			in.Observations[0].Current = v(140)
			in.UpStreak = 5
			in.LastScale = now.Add(-4 * time.Minute)
		}), 6, false, 6, 0, "cooldown (6m0s left)"},
		{"clamped to max", base(func(in *scaleInput) { in.Observations[0].Current = v(700); in.UpStreak = 2 }), 9, true, 0, 0, "to 9"},
		{"shrink needs six asks", base(func(in *scaleInput) { in.Current = 6; in.Observations[0].Current = v(20); in.DownStreak = 4 }), 3, false, 0, 5, "asked 5 of 6"},
		{"stabilized shrink, clamped to min", base(func(in *scaleInput) { in.Current = 6; in.Observations[0].Current = v(20); in.DownStreak = 5 }), 3, true, 0, 0, "scale down from 6 to 3"},
		{"one busy metric holds the size", base(func(in *scaleInput) {
			in.Current = 6
			in.Observations = []observation{{Type: "cpu", Target: 70, Tolerance: 0.1, Current: v(10)}, {Type: "produce_throughput", Target: 50000, Tolerance: 0.1, Current: v(50000)}}
		}), 6, false, 0, 0, "within"},
		{"nothing observed", base(func(in *scaleInput) { in.Observations[0].Message = "no metrics" }), 3, false, 0, 0, "no metric"},
		{"below min acts at once", base(func(in *scaleInput) { in.Current = 2 }), 3, true, 0, 0, "outside [3, 9]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decideScale(tc.in)
			if d.Desired != tc.desired || d.Scale != tc.scale || d.UpStreak != tc.up || d.DownStreak != tc.down || !strings.Contains(d.Reason, tc.reasonHas) {
				t.Fatalf("got %+v; want desired %d scale %t streaks %d/%d reason ~%q", d, tc.desired, tc.scale, tc.up, tc.down, tc.reasonHas)
			}
		})
	}
}

// TestAutoScalerStatus: without ready brokers (no kubelet here) nothing
// can be observed and the status says why, metric by metric; a missing
// cluster is named.
func TestAutoScalerStatus(t *testing.T) {
	ctx := context.Background()
	c := &chronikv1.ChronikCluster{ObjectMeta: metav1.ObjectMeta{Name: "scaled", Namespace: "autoscaler"}}
	if err := k8s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	a := &chronikv1.ChronikAutoScaler{
		ObjectMeta: metav1.ObjectMeta{Name: "scaled", Namespace: "autoscaler"},
		Spec: chronikv1.ChronikAutoScalerSpec{ClusterRef: chronikv1.AutoScalerClusterRef{Name: "scaled"},
			Metrics: []chronikv1.ScalingMetric{
				{MetricType: "cpu", TargetValue: resource.MustParse("70")},
				{MetricType: "produce_throughput", TargetValue: resource.MustParse("50000")},
			}},
	}
	if err := k8s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.Spec.MinReplicas != 3 || a.Spec.MaxReplicas != 9 || a.Spec.ScaleUpCooldownSecs != 600 || a.Spec.ScaleDownStabilizationCount != 6 || a.Spec.Metrics[0].TolerancePercent != 10 {
		t.Fatalf("defaults not applied: %+v", a.Spec)
	}
	eventually(t, time.Minute, "status", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
			return err
		}
		if a.Status.Active || a.Status.CurrentReplicas != 3 || len(a.Status.CurrentMetrics) != 2 || a.Status.CurrentMetrics[0].Message != "no broker pod is ready" {
			return fmt.Errorf("status %+v", a.Status)
		}
		return wantCondition(a.Status.Conditions, "Degraded", metav1.ConditionTrue, "MetricsUnavailable")
	})

	orphan := &chronikv1.ChronikAutoScaler{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "autoscaler"},
		Spec: chronikv1.ChronikAutoScalerSpec{ClusterRef: chronikv1.AutoScalerClusterRef{Name: "missing"},
			Metrics: []chronikv1.ScalingMetric{{MetricType: "disk", TargetValue: resource.MustParse("75")}}},
	}
	if err := k8s.Create(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "orphan status", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(orphan), orphan); err != nil {
			return err
		}
		return wantCondition(orphan.Status.Conditions, "Degraded", metav1.ConditionTrue, "ClusterNotFound")
	})
}
