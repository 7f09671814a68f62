package controller

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// ClusterReconciler reconciles a ChronikCluster.
type ClusterReconciler struct {
	*Env
}

// +kubebuilder:rbac:groups=chronik.io,resources=chronikclusters,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=chronik.io,resources=chronikclusters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete

// Reconcile brings one ChronikCluster's objects to its spec, drives a
// rolling restart one pod at a time, and reports the brokers' state.
func (r *ClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var c chronikv1.ChronikCluster
	if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !c.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if f := ignoredFields(&c.Spec.BrokerSpec); len(f) > 0 || len(c.Spec.Listeners) > 1 || c.Spec.SchemaRegistry != nil || c.Spec.AdminAPIKeySecret != nil {
		if len(c.Spec.Listeners) > 1 {
			f = append(f, "listeners after the first")
		}
		if c.Spec.SchemaRegistry != nil {
			f = append(f, "schemaRegistry")
		}
		if c.Spec.AdminAPIKeySecret != nil {
			f = append(f, "adminApiKeySecret")
		}
		r.Recorder.Eventf(&c, nil, corev1.EventTypeWarning, "FieldsIgnored", "Reconcile",
			"Chronik (Go) does not implement %s; the fields are accepted and have no effect", strings.Join(f, ", "))
	}

	// The StatefulSet's size is the cluster's membership. Changing it needs
	// Raft membership changes (a new node joins as a learner; a leaving
	// node is decommissioned first), which the broker does not have yet:
	// until it does, the operator keeps the size and says why.
	var sts appsv1.StatefulSet
	err := r.Client.Get(ctx, req.NamespacedName, &sts)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	exists := err == nil
	replicas := c.Spec.Replicas
	var refused string
	if exists && sts.Spec.Replicas != nil && *sts.Spec.Replicas != c.Spec.Replicas {
		replicas = *sts.Spec.Replicas
		refused = fmt.Sprintf("spec.replicas is %d but the cluster has %d brokers: adding or removing brokers needs Raft membership changes, which Chronik does not support yet; nothing was changed (set spec.replicas back to %d)",
			c.Spec.Replicas, replicas, replicas)
	}
	if refused == "" && c.Spec.ReplicationFactor > replicas {
		refused = fmt.Sprintf("replicationFactor %d exceeds the %d brokers", c.Spec.ReplicationFactor, replicas)
	}

	if refused == "" {
		cm, headless, svc, pdb, want := clusterObjects(&c, replicas, r.ClusterDomain)
		for _, obj := range []client.Object{cm, headless, svc, pdb, want} {
			if err := r.apply(ctx, &c, obj); err != nil {
				r.Recorder.Eventf(&c, nil, corev1.EventTypeWarning, "ApplyFailed", "Reconcile", "%v", err)
				c.Status.ObservedGeneration = c.Generation
				summary{degraded: true, reason: "ApplyFailed", message: err.Error()}.write(&c.Status.Conditions, c.Generation)
				if uerr := r.Client.Status().Update(ctx, &c); uerr != nil {
					return ctrl.Result{}, uerr
				}
				return ctrl.Result{}, err
			}
		}
		if !exists {
			r.Recorder.Eventf(&c, nil, corev1.EventTypeNormal, "Created", "Reconcile", "created StatefulSet %s with %d brokers", c.Name, replicas)
		}
		if err := r.Client.Get(ctx, req.NamespacedName, &sts); err != nil {
			return ctrl.Result{}, err
		}
		exists = true
	}

	pods, err := r.pods(ctx, &c, replicas, &sts)
	if err != nil {
		return ctrl.Result{}, err
	}
	ready := int32(0)
	for _, p := range pods {
		if p.Ready {
			ready++
		}
	}

	var health clusterHealth
	var healthErr error
	if ready > 0 {
		health, healthErr = describeHealth(ctx, r.bootstrap(c.Namespace, "ChronikCluster", c.Name, kafkaPort(&c)))
	} else {
		healthErr = fmt.Errorf("no broker is ready")
	}

	// Rolling restart: only once the StatefulSet controller has seen the
	// current template (its update revision is the one pods compare to).
	var step rollStep
	switch {
	case !exists:
		step = rollStep{Wait: "the StatefulSet does not exist"}
	case sts.Status.ObservedGeneration < sts.Generation || sts.Status.UpdateRevision == "":
		step = rollStep{Wait: "waiting for the StatefulSet controller to observe the new template"}
	default:
		rp := make([]rollPod, len(pods))
		for i, p := range pods {
			rp[i] = p.rollPod
		}
		step = nextRestart(rollInput{
			Pods: rp, Health: health, HealthErr: healthErr, Now: r.now(),
			Delay: time.Duration(restartDelay(&c)) * time.Second,
		})
	}
	if step.Restart != "" {
		if err := r.restart(ctx, &c, step.Restart, pods); err != nil {
			return ctrl.Result{}, err
		}
		step.Wait = "restarted pod " + step.Restart + "; waiting for it to report /readyz and for partitions to be in sync"
	}

	// Status.
	c.Status.ObservedGeneration = c.Generation
	c.Status.DesiredNodes = c.Spec.Replicas
	c.Status.ReadyNodes = ready
	c.Status.HeadlessService = headlessName(&c)
	c.Status.Listeners = []chronikv1.ListenerStatus{{
		Name:             listenerName(&c),
		Type:             listenerType(&c),
		BootstrapServers: fmt.Sprintf("%s:%d", serviceHost(c.Name, c.Namespace, r.ClusterDomain), kafkaPort(&c)),
	}}
	c.Status.Nodes = c.Status.Nodes[:0]
	c.Status.LeaderNodeID = nil
	if healthErr == nil && health.Controller > 0 {
		c.Status.LeaderNodeID = ptr.To(health.Controller)
	}
	for _, p := range pods {
		n := chronikv1.NodeStatus{NodeID: p.Ordinal + 1, PodName: p.Name, Ready: p.Ready, UpToDate: p.UpToDate,
			IsLeader: healthErr == nil && health.Controller == p.Ordinal+1}
		if p.Exists {
			n.Phase, n.PodIP = p.phase, p.ip
		}
		c.Status.Nodes = append(c.Status.Nodes, n)
	}
	c.Status.PartitionSummary = nil
	if healthErr == nil {
		c.Status.PartitionSummary = &chronikv1.PartitionSummary{
			Total: health.Total, UnderReplicated: health.UnderReplicated,
			InSync: health.Total - health.UnderReplicated - health.Offline,
		}
	}

	phase, conds := clusterConditions(pods, replicas, ready, refused, step, health, healthErr)
	for _, cond := range conds {
		setCondition(&c.Status.Conditions, c.Generation, cond.Type, cond.Status == metav1.ConditionTrue, cond.Reason, cond.Message)
	}
	if c.Status.Phase != phase {
		logger.Info("phase", "from", c.Status.Phase, "to", phase)
		r.Recorder.Eventf(&c, nil, corev1.EventTypeNormal, "Phase"+phase, "Reconcile", "cluster is %s", phase)
	}
	c.Status.Phase = phase
	if err := r.Client.Status().Update(ctx, &c); err != nil {
		return ctrl.Result{}, err
	}

	switch {
	case step.After > 0:
		return ctrl.Result{RequeueAfter: step.After}, nil
	case phase == "Running":
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	case phase == "Degraded":
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	default:
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
}

// clusterConditions derives the phase and the summary conditions.
func clusterConditions(pods []podView, replicas, ready int32, refused string, step rollStep, health clusterHealth, healthErr error) (string, []metav1.Condition) {
	cond := func(t string, s bool, reason, msg string) metav1.Condition {
		st := metav1.ConditionFalse
		if s {
			st = metav1.ConditionTrue
		}
		return metav1.Condition{Type: t, Status: st, Reason: reason, Message: msg}
	}
	allReady := ready == replicas
	inSync := healthErr == nil && health.inSync()
	var phase string
	var readyC, progC, degC metav1.Condition
	switch {
	case allReady && inSync:
		readyC = cond(chronikv1.ConditionReady, true, "Ready", fmt.Sprintf("%d/%d brokers ready, %d partitions in sync", ready, replicas, health.Total))
	case allReady && healthErr != nil:
		readyC = cond(chronikv1.ConditionReady, false, "BrokersUnreachable", healthErr.Error())
	case allReady:
		readyC = cond(chronikv1.ConditionReady, false, "PartitionsNotInSync", fmt.Sprintf("%d under-replicated, %d offline (%s)", health.UnderReplicated, health.Offline, health.Example))
	default:
		readyC = cond(chronikv1.ConditionReady, false, "BrokersNotReady", fmt.Sprintf("%d/%d brokers ready", ready, replicas))
	}
	outdated := 0
	for _, p := range pods {
		if p.Exists && !p.UpToDate {
			outdated++
		}
	}
	switch {
	case outdated > 0 || step.Restart != "":
		phase = "Updating"
		progC = cond(chronikv1.ConditionProgressing, true, "RollingRestart", fmt.Sprintf("%d pods to restart: %s", outdated, step.Wait))
	case ready == 0:
		phase = "Bootstrapping"
		progC = cond(chronikv1.ConditionProgressing, true, "Bootstrapping", fmt.Sprintf("waiting for the brokers to form the cluster (%d/%d ready)", ready, replicas))
	case !allReady:
		phase = "Degraded"
		progC = cond(chronikv1.ConditionProgressing, true, "WaitingForBrokers", fmt.Sprintf("%d/%d brokers ready", ready, replicas))
	case !inSync:
		phase = "Degraded"
		progC = cond(chronikv1.ConditionProgressing, false, "Idle", "")
	default:
		phase = "Running"
		progC = cond(chronikv1.ConditionProgressing, false, "Idle", "")
	}
	switch {
	case refused != "":
		degC = cond(chronikv1.ConditionDegraded, true, "ScalingNotSupported", refused)
		if phase == "Running" {
			phase = "Degraded"
		}
	case phase == "Degraded":
		degC = cond(chronikv1.ConditionDegraded, true, readyC.Reason, readyC.Message)
	default:
		degC = cond(chronikv1.ConditionDegraded, false, "AsExpected", "")
	}
	return phase, []metav1.Condition{readyC, progC, degC}
}

// podView is a rollPod plus what the status shows.
type podView struct {
	rollPod
	phase, ip string
}

// pods lists ordinals 0..replicas-1 as the rolling restart and the status
// see them, and labels each pod with its node id.
func (r *ClusterReconciler) pods(ctx context.Context, c *chronikv1.ChronikCluster, replicas int32, sts *appsv1.StatefulSet) ([]podView, error) {
	var list corev1.PodList
	if err := r.Client.List(ctx, &list, client.InNamespace(c.Namespace), client.MatchingLabels(selectorFor(c.Name, ComponentCluster))); err != nil {
		return nil, err
	}
	byName := map[string]*corev1.Pod{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	out := make([]podView, 0, replicas)
	for i := range replicas {
		name := fmt.Sprintf("%s-%d", c.Name, i)
		v := podView{rollPod: rollPod{Ordinal: i, Name: name}}
		if p, ok := byName[name]; ok {
			v.Exists = true
			v.Deleting = !p.DeletionTimestamp.IsZero()
			v.Ready = podReady(p)
			v.UpToDate = sts.Status.UpdateRevision != "" && p.Labels[appsv1.ControllerRevisionHashLabelKey] == sts.Status.UpdateRevision
			v.phase, v.ip = string(p.Status.Phase), p.Status.PodIP
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					v.ReadySince = cond.LastTransitionTime.Time
				}
			}
			if id := strconv.Itoa(int(i) + 1); p.Labels[LabelNodeID] != id && !v.Deleting {
				patch := client.MergeFrom(p.DeepCopy())
				if p.Labels == nil {
					p.Labels = map[string]string{}
				}
				p.Labels[LabelNodeID] = id
				if err := r.Client.Patch(ctx, p, patch); err != nil && !apierrors.IsNotFound(err) {
					return nil, fmt.Errorf("label pod %s: %w", name, err)
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// restart deletes one pod so that its StatefulSet recreates it from the
// current template. The UID precondition makes sure the pod deleted is
// the one that was judged.
func (r *ClusterReconciler) restart(ctx context.Context, c *chronikv1.ChronikCluster, name string, pods []podView) error {
	var p corev1.Pod
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, &p); err != nil {
		return client.IgnoreNotFound(err)
	}
	i := slices.IndexFunc(pods, func(v podView) bool { return v.Name == name })
	if err := r.Client.Delete(ctx, &p, client.Preconditions{UID: &p.UID}); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.Recorder.Eventf(c, &p, corev1.EventTypeNormal, "RestartingBroker", "RollingRestart",
		"restarting pod %s (node %d) to apply the current spec", name, pods[i].Ordinal+1)
	return nil
}

func restartDelay(c *chronikv1.ChronikCluster) int32 {
	if c.Spec.UpdateStrategy == nil {
		return 30
	}
	return c.Spec.UpdateStrategy.RestartDelaySecs
}

func listenerName(c *chronikv1.ChronikCluster) string {
	if len(c.Spec.Listeners) > 0 {
		return c.Spec.Listeners[0].Name
	}
	return "internal"
}

func listenerType(c *chronikv1.ChronikCluster) string {
	if len(c.Spec.Listeners) > 0 && c.Spec.Listeners[0].Type != "" {
		return c.Spec.Listeners[0].Type
	}
	return "internal"
}

// SetupWithManager registers the reconciler. Pods are watched through
// their StatefulSet's owner (a pod's readiness changes the status and
// drives the rolling restart).
func (r *ClusterReconciler) SetupWithManager(mgr ctrl.Manager, wrap func(string, ctrlReconciler) ctrlReconciler) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&chronikv1.ChronikCluster{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podToCluster)).
		Named("chronikcluster").
		Complete(wrap("chronikcluster", r))
}

// podToCluster maps a broker pod to its ChronikCluster by label.
func podToCluster(_ context.Context, o client.Object) []ctrl.Request {
	l := o.GetLabels()
	if l[LabelComponent] != ComponentCluster || l[LabelManagedBy] != managedBy || l[LabelInstance] == "" {
		return nil
	}
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: l[LabelInstance]}}}
}
