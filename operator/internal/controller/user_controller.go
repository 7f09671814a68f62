package controller

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// UserReconciler reconciles a ChronikUser. SASL/SCRAM credentials and
// ACLs arrive with the broker's security work; until then the operator
// creates nothing (no Secret holding a password the broker would not
// check) and says so in the status.
type UserReconciler struct {
	*Env
}

// +kubebuilder:rbac:groups=chronik.io,resources=chronikusers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=chronik.io,resources=chronikusers/status,verbs=get;update;patch

// ReasonSecurityNotSupported is the condition reason of every ChronikUser
// until the broker authenticates and authorizes.
const ReasonSecurityNotSupported = "SecurityNotSupported"

// Reconcile reports that users cannot be provisioned yet.
func (r *UserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var u chronikv1.ChronikUser
	if err := r.Client.Get(ctx, req.NamespacedName, &u); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !u.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	first := u.Status.Phase != "Pending"
	u.Status.ObservedGeneration = u.Generation
	u.Status.Phase = "Pending"
	u.Status.ACLCount = 0
	u.Status.CredentialsSecret = ""
	summary{
		degraded: true,
		reason:   ReasonSecurityNotSupported,
		message: "Chronik does not authenticate clients (SASL/SCRAM) or enforce ACLs yet; " +
			"no credentials or ACLs were created. The user is provisioned once broker security lands.",
	}.write(&u.Status.Conditions, u.Generation)
	if first {
		r.Recorder.Eventf(&u, nil, corev1.EventTypeWarning, ReasonSecurityNotSupported, "Reconcile",
			"user %s not provisioned: the broker has no SASL/SCRAM or ACLs yet", u.Name)
	}
	if err := r.Client.Status().Update(ctx, &u); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: 10 * time.Minute}, nil
}

// SetupWithManager registers the reconciler.
func (r *UserReconciler) SetupWithManager(mgr ctrl.Manager, wrap func(string, ctrlReconciler) ctrlReconciler) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&chronikv1.ChronikUser{}).
		Named("chronikuser").
		Complete(wrap("chronikuser", r))
}
