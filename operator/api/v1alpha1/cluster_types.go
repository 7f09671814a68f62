package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Listener is one Kafka listener. The first listener's port is the
// brokers' Kafka port; Chronik (Go) serves one listener, so further
// listeners are accepted for the original's manifests and reported as
// ignored.
type Listener struct {
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=15
	Name string `json:"name"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// +kubebuilder:validation:Enum=internal;nodeport;loadbalancer;ingress
	// +kubebuilder:default=internal
	// +optional
	Type string `json:"type,omitempty"`
	// +optional
	TLS bool `json:"tls,omitempty"`
	// +kubebuilder:validation:Minimum=30000
	// +kubebuilder:validation:Maximum=32767
	// +optional
	NodePortBase *int32 `json:"nodePortBase,omitempty"`
	// +optional
	TLSSecret string `json:"tlsSecret,omitempty"`
}

// PodDisruptionBudgetSpec bounds voluntary disruptions of the brokers.
type PodDisruptionBudgetSpec struct {
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:default=1
	// +optional
	MaxUnavailable int32 `json:"maxUnavailable,omitempty"`
}

// UpdateStrategy governs rolling restarts after a spec change.
type UpdateStrategy struct {
	// MaxUnavailable is how many brokers may restart at once. Only 1 is
	// accepted: a broker restarts only once every partition is back in
	// sync, which one restart at a time guarantees.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1
	// +kubebuilder:default=1
	// +optional
	MaxUnavailable int32 `json:"maxUnavailable,omitempty"`
	// RestartDelaySecs is the pause after a restarted broker is ready and
	// every partition is in sync, before the next broker restarts.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=30
	// +optional
	RestartDelaySecs int32 `json:"restartDelaySecs,omitempty"`
}

// SchemaRegistrySpec is the original's schema registry; not part of
// Chronik (Go): accepted and reported as ignored.
type SchemaRegistrySpec struct {
	Enabled bool `json:"enabled"`
	// +optional
	AuthEnabled bool `json:"authEnabled,omitempty"`
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
}

// ChronikClusterSpec is a replicated Chronik cluster: a StatefulSet, its
// headless and client Services, a PodDisruptionBudget and the peers
// configuration every node boots from.
//
// +kubebuilder:validation:XValidation:rule="self.replicationFactor <= self.replicas",message="replicationFactor cannot exceed replicas"
// +kubebuilder:validation:XValidation:rule="self.minInsyncReplicas <= self.replicationFactor",message="minInsyncReplicas cannot exceed replicationFactor"
// +kubebuilder:validation:XValidation:rule="!has(self.listeners) || self.listeners.all(l, self.listeners.exists_one(m, m.name == l.name))",message="listener names must be unique"
// +kubebuilder:validation:XValidation:rule="!has(self.listeners) || self.listeners.all(l, l.port != self.walPort && l.port != self.raftPort && l.port != self.metricsPort)",message="a listener port collides with walPort, raftPort or metricsPort"
// +kubebuilder:validation:XValidation:rule="self.raftPort != self.metricsPort && self.raftPort != self.walPort && self.walPort != self.metricsPort",message="walPort, raftPort and metricsPort must differ"
type ChronikClusterSpec struct {
	BrokerSpec `json:",inline"`

	// Replicas is the number of brokers. A cluster needs at least 3 to
	// survive the loss of one.
	// +kubebuilder:validation:Minimum=3
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=3
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReplicationFactor is the default replication factor of new topics.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=3
	// +optional
	ReplicationFactor int32 `json:"replicationFactor,omitempty"`
	// MinInsyncReplicas is the default min.insync.replicas of topics.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=2
	// +optional
	MinInsyncReplicas int32 `json:"minInsyncReplicas,omitempty"`
	// WALPort is the original's WAL replication port; written into the
	// peers configuration for compatibility (Chronik (Go) replicates over
	// the Raft port).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=9291
	// +optional
	WALPort int32 `json:"walPort,omitempty"`
	// RaftPort is the node-to-node port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=5001
	// +optional
	RaftPort int32 `json:"raftPort,omitempty"`
	// Listeners; the first one's port is the Kafka port (9092 when none is given).
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Listeners []Listener `json:"listeners,omitempty"`
	// AdminAPIKeySecret is the original's admin API key; Chronik (Go) is
	// administered over the Kafka protocol, so it is accepted and ignored.
	// +optional
	AdminAPIKeySecret *SecretKeyRef `json:"adminApiKeySecret,omitempty"`
	// AntiAffinity keeps brokers on different topology domains:
	// "required" refuses to co-locate, "preferred" tries not to.
	// +kubebuilder:validation:Enum=preferred;required
	// +kubebuilder:default=preferred
	// +optional
	AntiAffinity string `json:"antiAffinity,omitempty"`
	// +kubebuilder:default="kubernetes.io/hostname"
	// +optional
	AntiAffinityTopologyKey string `json:"antiAffinityTopologyKey,omitempty"`
	// +kubebuilder:default={maxUnavailable:1}
	// +optional
	PodDisruptionBudget *PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitempty"`
	// +kubebuilder:default={maxUnavailable:1,restartDelaySecs:30}
	// +optional
	UpdateStrategy *UpdateStrategy `json:"updateStrategy,omitempty"`
	// AutoRecover is written into the peers configuration (auto_recover);
	// the broker keeps it and does not act on it.
	// +kubebuilder:default=true
	// +optional
	AutoRecover *bool `json:"autoRecover,omitempty"`
	// SchemaRegistry is accepted for the original's manifests and ignored.
	// +optional
	SchemaRegistry *SchemaRegistrySpec `json:"schemaRegistry,omitempty"`
}

// ListenerStatus is where clients reach one listener.
type ListenerStatus struct {
	Name             string `json:"name"`
	BootstrapServers string `json:"bootstrapServers"`
	Type             string `json:"type"`
}

// NodeStatus is one broker as last observed.
type NodeStatus struct {
	NodeID  int32  `json:"nodeId"`
	PodName string `json:"podName"`
	// +optional
	Phase string `json:"phase,omitempty"`
	Ready bool   `json:"ready"`
	// IsLeader is true for the broker that leads the metadata (controller) group.
	IsLeader bool `json:"isLeader"`
	// +optional
	PodIP string `json:"podIp,omitempty"`
	// UpToDate is true when the pod runs the current pod template.
	UpToDate bool `json:"upToDate"`
}

// PartitionSummary counts partitions by replication state, as the
// brokers' Metadata reports them.
type PartitionSummary struct {
	Total           int32 `json:"total"`
	InSync          int32 `json:"inSync"`
	UnderReplicated int32 `json:"underReplicated"`
}

// ChronikClusterStatus is what the operator last observed.
type ChronikClusterStatus struct {
	// Phase is Pending, Bootstrapping, Running, Scaling, Updating, Degraded or Failed.
	// +optional
	Phase string `json:"phase,omitempty"`
	// +optional
	ReadyNodes int32 `json:"readyNodes"`
	// +optional
	DesiredNodes int32 `json:"desiredNodes"`
	// LeaderNodeID is the node that leads the metadata group (the Kafka controller).
	// +optional
	LeaderNodeID *int32 `json:"leaderNodeId,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	Listeners []ListenerStatus `json:"listeners,omitempty"`
	// +optional
	HeadlessService string `json:"headlessService,omitempty"`
	// +optional
	Nodes []NodeStatus `json:"nodes,omitempty"`
	// +optional
	PartitionSummary *PartitionSummary `json:"partitionSummary,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ChronikCluster is a replicated Chronik cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.readyNodes
// +kubebuilder:resource:shortName=ccl,categories=chronik
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyNodes`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredNodes`
// +kubebuilder:printcolumn:name="Leader",type=integer,JSONPath=`.status.leaderNodeId`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChronikCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is required (`spec: {}` takes every default).
	Spec ChronikClusterSpec `json:"spec"`
	// +optional
	Status ChronikClusterStatus `json:"status,omitempty"`
}

// ChronikClusterList is a list of ChronikCluster.
//
// +kubebuilder:object:root=true
type ChronikClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChronikCluster `json:"items"`
}
