package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ChronikStandaloneSpec is one broker: a StatefulSet of one pod with its
// data volume, a Service and a ConfigMap.
type ChronikStandaloneSpec struct {
	BrokerSpec `json:",inline"`

	// KafkaPort is the Kafka listener's port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=9092
	// +optional
	KafkaPort int32 `json:"kafkaPort,omitempty"`
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +kubebuilder:default=ClusterIP
	// +optional
	ServiceType corev1.ServiceType `json:"serviceType,omitempty"`
	// +optional
	ServiceAnnotations map[string]string `json:"serviceAnnotations,omitempty"`
}

// ChronikStandaloneStatus is what the operator last observed.
type ChronikStandaloneStatus struct {
	// Phase is Pending, Running or Failed.
	// +optional
	Phase string `json:"phase,omitempty"`
	// Healthy is true when the broker's /readyz answers ready (its pod is Ready).
	// +optional
	Healthy bool `json:"healthy"`
	// KafkaAddress is the bootstrap address inside the cluster.
	// +optional
	KafkaAddress string `json:"kafkaAddress,omitempty"`
	// UnifiedAPIAddress stays empty: there is no unified API (see spec.unifiedApiPort).
	// +optional
	UnifiedAPIAddress string `json:"unifiedApiAddress,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ChronikStandalone is a single Chronik broker.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=csa,categories=chronik
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Healthy",type=boolean,JSONPath=`.status.healthy`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.status.kafkaAddress`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChronikStandalone struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Spec ChronikStandaloneSpec `json:"spec,omitempty"`
	// +optional
	Status ChronikStandaloneStatus `json:"status,omitempty"`
}

// ChronikStandaloneList is a list of ChronikStandalone.
//
// +kubebuilder:object:root=true
type ChronikStandaloneList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChronikStandalone `json:"items"`
}
