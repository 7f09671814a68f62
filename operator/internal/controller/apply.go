package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// Env is what every reconciler shares.
type Env struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// ClusterDomain is the DNS suffix of Services (cluster.local).
	ClusterDomain string
	// Bootstrap gives the Kafka bootstrap addresses of a ChronikCluster or
	// ChronikStandalone. Nil means the in-cluster Service address; a
	// harness that runs brokers elsewhere sets its own.
	Bootstrap func(namespace, kind, name string, kafkaPort int32) []string
	// Now is the clock of restart delays and autoscaler cooldowns.
	Now func() time.Time
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// bootstrap is where a Kafka client reaches an instance's brokers.
func (e *Env) bootstrap(namespace, kind, name string, kafkaPort int32) []string {
	if e.Bootstrap != nil {
		return e.Bootstrap(namespace, kind, name, kafkaPort)
	}
	return []string{fmt.Sprintf("%s:%d", serviceHost(name, namespace, e.ClusterDomain), kafkaPort)}
}

// apply creates or updates obj by server-side apply as the operator's
// field manager, owned by owner (garbage-collected with it). Fields the
// operator does not set stay with whoever set them (defaults, other
// controllers, a user's kubectl label).
func (e *Env) apply(ctx context.Context, owner, obj client.Object) error {
	if err := controllerutil.SetControllerReference(owner, obj, e.Scheme); err != nil {
		return err
	}
	gvk, err := apiutil.GVKForObject(obj, e.Scheme)
	if err != nil {
		return err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	delete(m, "status")
	dropNullTimestamps(m)
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	if err := e.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	return nil
}

// dropNullTimestamps removes the creationTimestamp: null that typed
// objects carry in metadata and templates.
func dropNullTimestamps(m map[string]any) {
	for k, v := range m {
		switch t := v.(type) {
		case nil:
			if k == "creationTimestamp" {
				delete(m, k)
			}
		case map[string]any:
			dropNullTimestamps(t)
		case []any:
			for _, item := range t {
				if im, ok := item.(map[string]any); ok {
					dropNullTimestamps(im)
				}
			}
		}
	}
}

// setCondition sets one condition of a status.
func setCondition(conds *[]metav1.Condition, generation int64, typ string, status bool, reason, message string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: s, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

// summary sets Ready, Progressing and Degraded together, so the three
// never contradict each other.
type summary struct {
	ready, progressing, degraded bool
	reason, message              string
}

func (s summary) write(conds *[]metav1.Condition, generation int64) {
	readyReason, progReason, degReason := s.reason, "Idle", "AsExpected"
	if s.progressing {
		progReason = s.reason
	}
	if s.degraded {
		degReason = s.reason
	}
	if s.ready {
		readyReason = "Ready"
	}
	setCondition(conds, generation, "Ready", s.ready, readyReason, s.message)
	setCondition(conds, generation, "Progressing", s.progressing, progReason, pick(s.progressing, s.message))
	setCondition(conds, generation, "Degraded", s.degraded, degReason, pick(s.degraded, s.message))
}

func pick(b bool, msg string) string {
	if b {
		return msg
	}
	return ""
}
