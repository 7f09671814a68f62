package controller

import (
	ctrl "sigs.k8s.io/controller-runtime"
)

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
