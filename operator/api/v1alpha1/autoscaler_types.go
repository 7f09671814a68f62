package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScalingMetric is one target the autoscaler holds the cluster to.
type ScalingMetric struct {
	// MetricType: cpu and memory are percent of the brokers' requests,
	// disk percent of the data volume, produce_throughput records per
	// second per broker.
	// +kubebuilder:validation:Enum=cpu;memory;disk;produce_throughput
	MetricType string `json:"metricType"`
	// TargetValue is the value per broker the autoscaler aims at.
	TargetValue resource.Quantity `json:"targetValue"`
	// TolerancePercent is the band around the target inside which nothing changes.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=10
	// +optional
	TolerancePercent int32 `json:"tolerancePercent,omitempty"`
}

// AutoScalerClusterRef names the ChronikCluster to scale.
type AutoScalerClusterRef struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// ChronikAutoScalerSpec drives a ChronikCluster's replicas from metrics.
//
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="minReplicas cannot exceed maxReplicas"
type ChronikAutoScalerSpec struct {
	ClusterRef AutoScalerClusterRef `json:"clusterRef"`
	// +kubebuilder:validation:Minimum=3
	// +kubebuilder:default=3
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=9
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Metrics []ScalingMetric `json:"metrics"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=600
	// +optional
	ScaleUpCooldownSecs int64 `json:"scaleUpCooldownSecs,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=1800
	// +optional
	ScaleDownCooldownSecs int64 `json:"scaleDownCooldownSecs,omitempty"`
	// ScaleUpStabilizationCount is how many observations in a row must
	// ask for more brokers before a scale up.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=3
	// +optional
	ScaleUpStabilizationCount int32 `json:"scaleUpStabilizationCount,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=6
	// +optional
	ScaleDownStabilizationCount int32 `json:"scaleDownStabilizationCount,omitempty"`
}

// MetricValue is one observed metric.
type MetricValue struct {
	MetricType string `json:"metricType"`
	// +optional
	CurrentValue *resource.Quantity `json:"currentValue,omitempty"`
	TargetValue  resource.Quantity  `json:"targetValue"`
	// +optional
	Message string `json:"message,omitempty"`
}

// ChronikAutoScalerStatus is what the autoscaler last observed and decided.
type ChronikAutoScalerStatus struct {
	// +optional
	Active bool `json:"active"`
	// +optional
	CurrentReplicas int32 `json:"currentReplicas,omitempty"`
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas,omitempty"`
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`
	// +kubebuilder:validation:Enum=up;down
	// +optional
	LastScaleDirection string `json:"lastScaleDirection,omitempty"`
	// +optional
	CurrentMetrics []MetricValue `json:"currentMetrics,omitempty"`
	// UpStreak and DownStreak count consecutive observations asking to
	// scale up or down (the stabilization counts compare against them).
	// +optional
	UpStreak int32 `json:"upStreak,omitempty"`
	// +optional
	DownStreak int32 `json:"downStreak,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ChronikAutoScaler scales a ChronikCluster between minReplicas and maxReplicas.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cas,categories=chronik
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterRef.name`
// +kubebuilder:printcolumn:name="Current",type=integer,JSONPath=`.status.currentReplicas`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="Active",type=boolean,JSONPath=`.status.active`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChronikAutoScaler struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ChronikAutoScalerSpec `json:"spec"`
	// +optional
	Status ChronikAutoScalerStatus `json:"status,omitempty"`
}

// ChronikAutoScalerList is a list of ChronikAutoScaler.
//
// +kubebuilder:object:root=true
type ChronikAutoScalerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChronikAutoScaler `json:"items"`
}
