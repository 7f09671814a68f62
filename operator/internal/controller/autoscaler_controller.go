package controller

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// AutoScalerReconciler observes a ChronikCluster's load and decides its
// size with the original's targets, tolerances, stabilization counts and
// cooldowns. Until the broker supports membership changes, ApplyScaling
// is false: the decision is reported (status, condition, event) and the
// cluster is left alone, since the ClusterReconciler would refuse it.
type AutoScalerReconciler struct {
	*Env
	// ApplyScaling patches ChronikCluster.spec.replicas when a decision is due.
	ApplyScaling bool
	// HTTP scrapes the brokers' /metrics.
	HTTP *http.Client

	mu      sync.Mutex
	samples map[types.UID]counterSample // last produce counter per autoscaler
}

type counterSample struct {
	at    time.Time
	total float64
}

// +kubebuilder:rbac:groups=chronik.io,resources=chronikautoscalers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=chronik.io,resources=chronikautoscalers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=metrics.k8s.io,resources=pods,verbs=get;list

const autoscalerInterval = 30 * time.Second

// Reconcile observes, decides and reports; see AutoScalerReconciler.
func (r *AutoScalerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var a chronikv1.ChronikAutoScaler
	if err := r.Client.Get(ctx, req.NamespacedName, &a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !a.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	a.Status.ObservedGeneration = a.Generation
	var c chronikv1.ChronikCluster
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.ClusterRef.Name}, &c); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		a.Status.Active = false
		summary{degraded: true, reason: "ClusterNotFound", message: "ChronikCluster " + a.Spec.ClusterRef.Name + " not found"}.write(&a.Status.Conditions, a.Generation)
		return ctrl.Result{RequeueAfter: autoscalerInterval}, r.Client.Status().Update(ctx, &a)
	}

	pods, err := r.readyPods(ctx, &c)
	if err != nil {
		return ctrl.Result{}, err
	}
	obs := r.observe(ctx, &a, &c, pods)
	d := decideScale(scaleInput{
		Current: c.Spec.Replicas, Min: a.Spec.MinReplicas, Max: a.Spec.MaxReplicas,
		Observations: obs, UpStreak: a.Status.UpStreak, DownStreak: a.Status.DownStreak,
		UpCount: a.Spec.ScaleUpStabilizationCount, DownCount: a.Spec.ScaleDownStabilizationCount,
		UpCooldown: time.Duration(a.Spec.ScaleUpCooldownSecs) * time.Second,
		DownCoolDn: time.Duration(a.Spec.ScaleDownCooldownSecs) * time.Second,
		LastScale:  lastScale(&a),
		Now:        r.now(),
	})

	a.Status.CurrentReplicas = c.Spec.Replicas
	a.Status.DesiredReplicas = d.Desired
	a.Status.UpStreak, a.Status.DownStreak = d.UpStreak, d.DownStreak
	a.Status.CurrentMetrics = a.Status.CurrentMetrics[:0]
	observed := 0
	for i, o := range obs {
		mv := chronikv1.MetricValue{MetricType: o.Type, TargetValue: a.Spec.Metrics[i].TargetValue, Message: o.Message}
		if o.Current != nil {
			observed++
			mv.CurrentValue = resource.NewMilliQuantity(int64(*o.Current*1000), resource.DecimalSI)
		}
		a.Status.CurrentMetrics = append(a.Status.CurrentMetrics, mv)
	}
	a.Status.Active = observed > 0

	sum := summary{ready: observed > 0, reason: "Observing", message: d.Reason}
	switch {
	case observed == 0:
		sum = summary{degraded: true, reason: "MetricsUnavailable", message: "no metric could be observed: " + metricMessages(obs)}
	case d.Scale && !r.ApplyScaling:
		sum = summary{ready: true, degraded: true, reason: "MembershipNotSupported",
			message: d.Reason + " is due, but adding or removing brokers needs Raft membership changes, which Chronik does not support yet; the cluster is left at " + strconv.Itoa(int(c.Spec.Replicas))}
		a.Status.Active = false
	case d.Scale:
		patch := client.MergeFrom(c.DeepCopy())
		c.Spec.Replicas = d.Desired
		if err := r.Client.Patch(ctx, &c, patch); err != nil {
			return ctrl.Result{}, err
		}
		now := metav1.NewTime(r.now())
		a.Status.LastScaleTime = &now
		a.Status.LastScaleDirection = "up"
		if d.Desired < a.Status.CurrentReplicas {
			a.Status.LastScaleDirection = "down"
		}
		r.Recorder.Eventf(&a, &c, corev1.EventTypeNormal, "Scaled", "Scale", "%s", d.Reason)
		sum = summary{ready: true, progressing: true, reason: "Scaling", message: d.Reason}
	}
	if sum.degraded && !meta.IsStatusConditionTrue(a.Status.Conditions, chronikv1.ConditionDegraded) {
		r.Recorder.Eventf(&a, nil, corev1.EventTypeWarning, sum.reason, "Observe", "%s", sum.message)
	}
	sum.write(&a.Status.Conditions, a.Generation)
	if err := r.Client.Status().Update(ctx, &a); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: autoscalerInterval}, nil
}

func lastScale(a *chronikv1.ChronikAutoScaler) time.Time {
	if a.Status.LastScaleTime == nil {
		return time.Time{}
	}
	return a.Status.LastScaleTime.Time
}

func metricMessages(obs []observation) string {
	var parts []string
	for _, o := range obs {
		parts = append(parts, o.Type+": "+o.Message)
	}
	return strings.Join(parts, "; ")
}

// readyPods are the cluster's ready broker pods.
func (r *AutoScalerReconciler) readyPods(ctx context.Context, c *chronikv1.ChronikCluster) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(c.Namespace), client.MatchingLabels(selectorFor(c.Name, ComponentCluster))); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if podReady(&p) && p.Status.PodIP != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// observe measures every metric of the autoscaler, per broker.
func (r *AutoScalerReconciler) observe(ctx context.Context, a *chronikv1.ChronikAutoScaler, c *chronikv1.ChronikCluster, pods []corev1.Pod) []observation {
	out := make([]observation, 0, len(a.Spec.Metrics))
	for _, m := range a.Spec.Metrics {
		o := observation{Type: m.MetricType, Target: m.TargetValue.AsApproximateFloat64(), Tolerance: float64(m.TolerancePercent) / 100}
		var v float64
		var err error
		switch {
		case len(pods) == 0:
			err = fmt.Errorf("no broker pod is ready")
		case m.MetricType == "produce_throughput":
			v, err = r.produceRate(ctx, a.UID, c, pods)
		case m.MetricType == "cpu" || m.MetricType == "memory":
			v, err = r.usagePercent(ctx, c, pods, corev1.ResourceName(m.MetricType))
		default: // disk
			err = fmt.Errorf("the broker does not export its volume usage yet")
		}
		if err != nil {
			o.Message = err.Error()
		} else {
			o.Current = &v
		}
		out = append(out, o)
	}
	return out
}

// produceRate is records received per second per broker, from the rise
// of chronik_messages_received_total over all ready brokers since the
// previous observation.
func (r *AutoScalerReconciler) produceRate(ctx context.Context, uid types.UID, c *chronikv1.ChronikCluster, pods []corev1.Pod) (float64, error) {
	total := 0.0
	for _, p := range pods {
		v, err := r.scrape(ctx, fmt.Sprintf("http://%s:%d/metrics", p.Status.PodIP, c.Spec.MetricsPort), "chronik_messages_received_total")
		if err != nil {
			return 0, err
		}
		total += v
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.samples == nil {
		r.samples = map[types.UID]counterSample{}
	}
	prev, ok := r.samples[uid]
	r.samples[uid] = counterSample{at: now, total: total}
	if !ok || total < prev.total || !now.After(prev.at) {
		return 0, fmt.Errorf("first sample taken; the rate comes with the next observation")
	}
	return (total - prev.total) / now.Sub(prev.at).Seconds() / float64(len(pods)), nil
}

// scrape sums the samples of one metric on a /metrics page.
func (r *AutoScalerReconciler) scrape(ctx context.Context, url, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	hc := r.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("%s has no %s", url, name)
	}
	return sum, nil
}

var podMetricsGVK = schema.GroupVersionKind{Group: "metrics.k8s.io", Version: "v1beta1", Kind: "PodMetricsList"}

// usagePercent is the brokers' mean usage of a resource as a percentage
// of their requests, from metrics.k8s.io (metrics-server).
func (r *AutoScalerReconciler) usagePercent(ctx context.Context, c *chronikv1.ChronikCluster, pods []corev1.Pod, res corev1.ResourceName) (float64, error) {
	request := c.Spec.Resources.Requests[res]
	if request.IsZero() {
		return 0, fmt.Errorf("spec.resources.requests.%s is not set, so there is no 100 %%", res)
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(podMetricsGVK)
	if err := r.Client.List(ctx, list, client.InNamespace(c.Namespace), client.MatchingLabels(selectorFor(c.Name, ComponentCluster))); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("metrics.k8s.io is not served (install metrics-server)")
		}
		return 0, fmt.Errorf("metrics.k8s.io: %w", err)
	}
	ready := map[string]bool{}
	for _, p := range pods {
		ready[p.Name] = true
	}
	total, n := 0.0, 0
	for _, item := range list.Items {
		if !ready[item.GetName()] {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(item.Object, "containers")
		for _, ct := range containers {
			m, _ := ct.(map[string]any)
			if name, _ := m["name"].(string); name != "chronik" {
				continue
			}
			s, _, _ := unstructured.NestedString(m, "usage", string(res))
			q, err := resource.ParseQuantity(s)
			if err != nil {
				return 0, fmt.Errorf("usage %q of %s: %w", s, item.GetName(), err)
			}
			total += 100 * q.AsApproximateFloat64() / request.AsApproximateFloat64()
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("metrics.k8s.io has no usage for the ready brokers yet")
	}
	return total / float64(n), nil
}

// SetupWithManager registers the reconciler.
func (r *AutoScalerReconciler) SetupWithManager(mgr ctrl.Manager, wrap func(string, ctrlReconciler) ctrlReconciler) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&chronikv1.ChronikAutoScaler{}).
		Named("chronikautoscaler").
		Complete(wrap("chronikautoscaler", r))
}
