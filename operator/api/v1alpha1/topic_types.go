package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Topic deletion policies.
const (
	// DeletionPolicyDelete deletes the Kafka topic with the resource.
	DeletionPolicyDelete = "delete"
	// DeletionPolicyRetain keeps the Kafka topic when the resource goes.
	DeletionPolicyRetain = "retain"
)

// ColumnarSpec is the original's columnar export; not part of Chronik
// (Go): accepted and reported as ignored.
type ColumnarSpec struct {
	Enabled bool `json:"enabled"`
	// +kubebuilder:default=parquet
	// +optional
	Format string `json:"format,omitempty"`
	// +kubebuilder:default=zstd
	// +optional
	Compression string `json:"compression,omitempty"`
	// +kubebuilder:default=daily
	// +optional
	Partitioning string `json:"partitioning,omitempty"`
}

// TopicVectorSearchSpec is the original's per-topic embedding index; not
// part of Chronik (Go): accepted and reported as ignored.
type TopicVectorSearchSpec struct {
	Enabled bool `json:"enabled"`
	// +kubebuilder:default=openai
	// +optional
	EmbeddingProvider string `json:"embeddingProvider,omitempty"`
	// +optional
	EmbeddingModel string `json:"embeddingModel,omitempty"`
	// +kubebuilder:default=value
	// +optional
	Field string `json:"field,omitempty"`
	// +kubebuilder:default=cosine
	// +optional
	IndexMetric string `json:"indexMetric,omitempty"`
}

// ChronikTopicSpec is a Kafka topic, created and changed over the Kafka
// protocol.
//
// +kubebuilder:validation:XValidation:rule="self.clusterRef == oldSelf.clusterRef",message="clusterRef cannot be changed"
// +kubebuilder:validation:XValidation:rule="self.partitions >= oldSelf.partitions",message="partitions can only be increased"
// +kubebuilder:validation:XValidation:rule="self.replicationFactor == oldSelf.replicationFactor",message="replicationFactor cannot be changed (partition reassignment is not supported)"
type ChronikTopicSpec struct {
	ClusterRef ClusterRef `json:"clusterRef"`
	// TopicName is the Kafka topic's name; metadata.name when empty.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="topicName cannot be '.' or '..'"
	// +optional
	TopicName string `json:"topicName,omitempty"`
	// Partitions can grow, never shrink.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +kubebuilder:default=1
	// +optional
	Partitions int32 `json:"partitions,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=3
	// +optional
	ReplicationFactor int32 `json:"replicationFactor,omitempty"`
	// Config holds topic configs (retention.ms, cleanup.policy, …); the
	// broker validates them and the status carries its error.
	// +optional
	Config map[string]string `json:"config,omitempty"`
	// +optional
	Columnar *ColumnarSpec `json:"columnar,omitempty"`
	// +optional
	VectorSearch *TopicVectorSearchSpec `json:"vectorSearch,omitempty"`
	// +optional
	Searchable bool `json:"searchable,omitempty"`
	// DeletionPolicy says what happens to the Kafka topic when the resource is deleted.
	// +kubebuilder:validation:Enum=delete;retain
	// +kubebuilder:default=delete
	// +optional
	DeletionPolicy string `json:"deletionPolicy,omitempty"`
}

// ChronikTopicStatus is what the brokers last reported.
type ChronikTopicStatus struct {
	// Phase is Ready, Updating or Error.
	// +optional
	Phase string `json:"phase,omitempty"`
	// +optional
	CurrentPartitions int32 `json:"currentPartitions,omitempty"`
	// +optional
	CurrentReplicationFactor int32 `json:"currentReplicationFactor,omitempty"`
	// +optional
	TopicID string `json:"topicId,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ChronikTopic is a Kafka topic on a ChronikCluster or ChronikStandalone.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ctopic,categories=chronik
// +kubebuilder:validation:XValidation:rule="(has(self.spec.topicName) ? self.spec.topicName : self.metadata.name) == (has(oldSelf.spec.topicName) ? oldSelf.spec.topicName : oldSelf.metadata.name)",message="topicName cannot be changed (it names the Kafka topic)"
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterRef.name`
// +kubebuilder:printcolumn:name="Partitions",type=integer,JSONPath=`.status.currentPartitions`
// +kubebuilder:printcolumn:name="RF",type=integer,JSONPath=`.status.currentReplicationFactor`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChronikTopic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ChronikTopicSpec `json:"spec"`
	// +optional
	Status ChronikTopicStatus `json:"status,omitempty"`
}

// KafkaName is the Kafka topic's name.
func (t *ChronikTopic) KafkaName() string {
	if t.Spec.TopicName != "" {
		return t.Spec.TopicName
	}
	return t.Name
}

// ChronikTopicList is a list of ChronikTopic.
//
// +kubebuilder:object:root=true
type ChronikTopicList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChronikTopic `json:"items"`
}
