package controller

import (
	ctrl "sigs.k8s.io/controller-runtime"
)

// The leader Lease and events (the process's, not one controller's).
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// SetupAll registers every reconciler with the manager, each counted and
// timed by metrics.
func SetupAll(mgr ctrl.Manager, env *Env, metrics *Metrics) error {
	for _, s := range []interface {
		SetupWithManager(ctrl.Manager, func(string, ctrlReconciler) ctrlReconciler) error
	}{
		&StandaloneReconciler{Env: env},
		&ClusterReconciler{Env: env},
		&TopicReconciler{Env: env},
		&UserReconciler{Env: env},
		&AutoScalerReconciler{Env: env},
	} {
		if err := s.SetupWithManager(mgr, metrics.Wrap); err != nil {
			return err
		}
	}
	return nil
}
