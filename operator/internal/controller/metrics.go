package controller

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

type ctrlReconciler = reconcile.Reconciler

// Metrics are the operator's own metrics (the original's names).
type Metrics struct {
	reconciliations *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	// Leader is 1 while this process holds the leader lease.
	Leader prometheus.Gauge
}

// NewMetrics registers the operator's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reconciliations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chronik_operator_reconciliations_total",
			Help: "Reconciliations by controller and result (success, error).",
		}, []string{"controller", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chronik_operator_reconciliation_duration_seconds",
			Help:    "Time one reconciliation took, by controller.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"controller"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chronik_operator_leader",
			Help: "1 while this operator process holds the leader lease, else 0.",
		}),
	}
	reg.MustRegister(m.reconciliations, m.duration, m.Leader)
	return m
}

// Wrap counts and times every reconciliation of one controller.
func (m *Metrics) Wrap(name string, r ctrlReconciler) ctrlReconciler {
	return reconcile.Func(func(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
		start := time.Now()
		res, err := r.Reconcile(ctx, req)
		m.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		result := "success"
		if err != nil {
			result = "error"
		}
		m.reconciliations.WithLabelValues(name, result).Inc()
		return res, err
	})
}
