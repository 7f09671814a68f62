package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// TopicReconciler reconciles a ChronikTopic over the Kafka protocol.
type TopicReconciler struct {
	*Env
}

// +kubebuilder:rbac:groups=chronik.io,resources=chroniktopics,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=chronik.io,resources=chroniktopics/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=chronik.io,resources=chroniktopics/finalizers,verbs=update

// errTopic is a refusal by Kafka; the status carries it and the
// reconciler retries later rather than at once.
type errTopic struct{ reason, msg string }

func (e *errTopic) Error() string { return e.msg }

// Reconcile creates the topic, grows its partitions and sets its configs;
// on deletion it deletes the Kafka topic when the policy says so.
func (r *TopicReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var t chronikv1.ChronikTopic
	if err := r.Client.Get(ctx, req.NamespacedName, &t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	bootstrap, clusterGone, err := r.clusterBootstrap(ctx, t.Namespace, t.Spec.ClusterRef)
	if err != nil {
		return ctrl.Result{}, err
	}

	if !t.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(&t, Finalizer) {
			return ctrl.Result{}, nil
		}
		if t.Spec.DeletionPolicy == chronikv1.DeletionPolicyDelete && !clusterGone {
			if err := deleteTopic(ctx, bootstrap, t.KafkaName()); err != nil {
				r.Recorder.Eventf(&t, nil, corev1.EventTypeWarning, "DeleteFailed", "Delete", "deleting Kafka topic %s: %v", t.KafkaName(), err)
				return r.status(ctx, &t, nil, err)
			}
			r.Recorder.Eventf(&t, nil, corev1.EventTypeNormal, "Deleted", "Delete", "deleted Kafka topic %s", t.KafkaName())
		}
		patch := client.MergeFrom(t.DeepCopy())
		controllerutil.RemoveFinalizer(&t, Finalizer)
		return ctrl.Result{}, r.Client.Patch(ctx, &t, patch)
	}
	if !controllerutil.ContainsFinalizer(&t, Finalizer) {
		patch := client.MergeFrom(t.DeepCopy())
		controllerutil.AddFinalizer(&t, Finalizer)
		if err := r.Client.Patch(ctx, &t, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	if clusterGone {
		return r.status(ctx, &t, nil, &errTopic{"ClusterNotFound", fmt.Sprintf("%s %s not found", t.Spec.ClusterRef.Kind, t.Spec.ClusterRef.Name)})
	}
	td, err := r.ensure(ctx, &t, bootstrap)
	return r.status(ctx, &t, td, err)
}

// clusterBootstrap finds the referenced instance and where its brokers
// listen; gone is true when it does not exist or is being deleted.
func (r *TopicReconciler) clusterBootstrap(ctx context.Context, ns string, ref chronikv1.ClusterRef) (bootstrap []string, gone bool, err error) {
	key := types.NamespacedName{Namespace: ns, Name: ref.Name}
	var port int32
	var obj client.Object
	switch ref.Kind {
	case "ChronikStandalone":
		var s chronikv1.ChronikStandalone
		err, obj = r.Client.Get(ctx, key, &s), &s
		port = s.Spec.KafkaPort
	default:
		var c chronikv1.ChronikCluster
		err, obj = r.Client.Get(ctx, key, &c), &c
		port = kafkaPort(&c)
	}
	if apierrors.IsNotFound(err) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return nil, true, nil
	}
	kind := ref.Kind
	if kind == "" {
		kind = "ChronikCluster"
	}
	return r.bootstrap(ns, kind, ref.Name, port), false, nil
}

// ensure makes the Kafka topic match the spec and returns what Kafka reports.
func (r *TopicReconciler) ensure(ctx context.Context, t *chronikv1.ChronikTopic, bootstrap []string) (*kadm.TopicDetail, error) {
	adm, err := newAdmin(bootstrap)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	name := t.KafkaName()

	td, err := describeTopic(ctx, adm, name)
	if err != nil {
		return nil, err
	}
	if td == nil {
		configs := map[string]*string{}
		for k, v := range t.Spec.Config {
			configs[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(ctx, t.Spec.Partitions, int16(t.Spec.ReplicationFactor), configs, name)
		if err != nil {
			return nil, kafkaErr("CreateTopicFailed", "create topic", err, resp.ErrMessage)
		}
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "Created", "CreateTopic", "created Kafka topic %s with %d partitions", name, t.Spec.Partitions)
		return describeTopic(ctx, adm, name)
	}

	have := int32(len(td.Partitions))
	switch {
	case have < t.Spec.Partitions:
		resps, err := adm.UpdatePartitions(ctx, int(t.Spec.Partitions), name)
		if err == nil {
			resp := resps[name]
			err = resp.Err
			if err != nil {
				return td, kafkaErr("CreatePartitionsFailed", "grow partitions", err, resp.ErrMessage)
			}
		}
		if err != nil {
			return td, kafkaErr("CreatePartitionsFailed", "grow partitions", err, "")
		}
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "PartitionsIncreased", "CreatePartitions", "Kafka topic %s: %d -> %d partitions", name, have, t.Spec.Partitions)
	case have > t.Spec.Partitions:
		return td, &errTopic{"PartitionsCannotShrink", fmt.Sprintf("the topic has %d partitions and the spec asks for %d: Kafka cannot remove partitions", have, t.Spec.Partitions)}
	}
	if rf := replicationFactor(td); rf != t.Spec.ReplicationFactor {
		return td, &errTopic{"ReplicationFactorMismatch", fmt.Sprintf("the topic has replication factor %d and the spec asks for %d: changing it needs partition reassignment, which is not supported", rf, t.Spec.ReplicationFactor)}
	}
	if err := r.syncConfigs(ctx, adm, t); err != nil {
		return td, err
	}
	return describeTopic(ctx, adm, name)
}

// syncConfigs sets the spec's configs and removes dynamic topic configs
// the spec no longer names (the spec is the whole truth of the topic's
// overrides, as with the topic's partitions).
func (r *TopicReconciler) syncConfigs(ctx context.Context, adm *kadm.Client, t *chronikv1.ChronikTopic) error {
	name := t.KafkaName()
	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return kafkaErr("DescribeConfigsFailed", "describe configs", err, "")
	}
	rc, err := rcs.On(name, nil)
	if err == nil && rc.Err != nil {
		err = rc.Err
	}
	if err != nil {
		return kafkaErr("DescribeConfigsFailed", "describe configs", err, rc.ErrMessage)
	}
	current := map[string]string{}
	dynamic := map[string]bool{}
	for _, c := range rc.Configs {
		if c.Value != nil {
			current[c.Key] = *c.Value
		}
		dynamic[c.Key] = c.Source == kmsg.ConfigSourceDynamicTopicConfig
	}
	var alter []kadm.AlterConfig
	for _, k := range sortedKeys(t.Spec.Config) {
		if v, ok := current[k]; !ok || v != t.Spec.Config[k] || !dynamic[k] {
			alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(t.Spec.Config[k])})
		}
	}
	for _, k := range sortedKeys(dynamic) {
		if _, want := t.Spec.Config[k]; dynamic[k] && !want {
			alter = append(alter, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
		}
	}
	if len(alter) == 0 {
		return nil
	}
	resps, err := adm.AlterTopicConfigs(ctx, alter, name)
	if err == nil {
		for _, resp := range resps {
			if resp.Err != nil {
				return kafkaErr("AlterConfigsFailed", "alter configs", resp.Err, resp.ErrMessage)
			}
		}
	}
	if err != nil {
		return kafkaErr("AlterConfigsFailed", "alter configs", err, "")
	}
	keys := make([]string, 0, len(alter))
	for _, a := range alter {
		keys = append(keys, a.Name)
	}
	r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "ConfigsChanged", "AlterConfigs", "Kafka topic %s: set or removed %v", name, keys)
	return nil
}

// status writes what Kafka reported, or the error it gave.
func (r *TopicReconciler) status(ctx context.Context, t *chronikv1.ChronikTopic, td *kadm.TopicDetail, err error) (ctrl.Result, error) {
	t.Status.ObservedGeneration = t.Generation
	if td != nil {
		t.Status.CurrentPartitions = int32(len(td.Partitions))
		t.Status.CurrentReplicationFactor = replicationFactor(td)
		t.Status.TopicID = td.ID.String()
	}
	sum := summary{ready: true, reason: "Ready", message: fmt.Sprintf("topic %s has %d partitions", t.KafkaName(), t.Status.CurrentPartitions)}
	t.Status.Phase = "Ready"
	retry := time.Minute
	if err != nil {
		var te *errTopic
		reason := "KafkaUnreachable"
		if errors.As(err, &te) {
			reason = te.reason
		}
		t.Status.Phase = "Error"
		sum = summary{degraded: true, reason: reason, message: err.Error()}
		retry = 15 * time.Second
	}
	sum.write(&t.Status.Conditions, t.Generation)
	if uerr := r.Client.Status().Update(ctx, t); uerr != nil && !apierrors.IsNotFound(uerr) {
		return ctrl.Result{}, uerr
	}
	return ctrl.Result{RequeueAfter: retry}, nil
}

// describeTopic returns the topic's metadata, nil when it does not exist.
func describeTopic(ctx context.Context, adm *kadm.Client, name string) (*kadm.TopicDetail, error) {
	tds, err := adm.ListTopics(ctx, name)
	if err != nil {
		return nil, kafkaErr("MetadataFailed", "metadata", err, "")
	}
	td, ok := tds[name]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return nil, nil
	}
	if td.Err != nil {
		return nil, kafkaErr("MetadataFailed", "metadata", td.Err, "")
	}
	return &td, nil
}

// deleteTopic deletes a Kafka topic; one already gone is fine.
func deleteTopic(ctx context.Context, bootstrap []string, name string) error {
	adm, err := newAdmin(bootstrap)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	resp, err := adm.DeleteTopic(ctx, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return kafkaErr("DeleteTopicFailed", "delete topic", err, resp.ErrMessage)
	}
	return nil
}

// kafkaErr keeps the broker's error code and message for the status.
func kafkaErr(reason, op string, err error, msg string) error {
	text := fmt.Sprintf("%s: %v", op, err)
	if msg != "" {
		text += ": " + msg
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		reason = "KafkaUnreachable"
	}
	return &errTopic{reason: reason, msg: text}
}

// replicationFactor is the replica count of the topic's partitions (the
// largest, should they differ).
func replicationFactor(td *kadm.TopicDetail) int32 {
	rf := 0
	for _, p := range td.Partitions {
		rf = max(rf, len(p.Replicas))
	}
	return int32(rf)
}

// SetupWithManager registers the reconciler.
func (r *TopicReconciler) SetupWithManager(mgr ctrl.Manager, wrap func(string, ctrlReconciler) ctrlReconciler) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&chronikv1.ChronikTopic{}).
		Named("chroniktopic").
		Complete(wrap("chroniktopic", r))
}
