// Package v1alpha1 holds the chronik.io/v1alpha1 API: ChronikStandalone,
// ChronikCluster, ChronikTopic, ChronikUser and ChronikAutoScaler, with the
// original Chronik operator's kinds, field names and defaults. The
// validation and defaulting markers here become the CRDs under
// config/crd/bases (make generate); the API server enforces them, so a
// controller never sees a spec that breaks them.
//
// +kubebuilder:object:generate=true
// +groupName=chronik.io
package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every kind here.
	GroupVersion = schema.GroupVersion{Group: "chronik.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ChronikStandalone{}, &ChronikStandaloneList{},
		&ChronikCluster{}, &ChronikClusterList{},
		&ChronikTopic{}, &ChronikTopicList{},
		&ChronikUser{}, &ChronikUserList{},
		&ChronikAutoScaler{}, &ChronikAutoScalerList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// Condition types every kind reports (the Kubernetes API conventions'
// summary conditions).
const (
	// ConditionReady is True when the resource is what its spec asks for
	// and serving.
	ConditionReady = "Ready"
	// ConditionProgressing is True while the operator is changing things
	// towards the spec (creating, rolling, waiting for pods).
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when something is wrong that the
	// operator cannot fix alone (an invalid request, a refused change, a
	// broker error); its message says what.
	ConditionDegraded = "Degraded"
)

// StorageSpec is the persistent volume each broker keeps its data on.
type StorageSpec struct {
	// StorageClass names the StorageClass of the data volumes. Empty
	// means the cluster's default StorageClass. (The original defaulted
	// to "standard", a class many clusters do not have.)
	// +optional
	StorageClass string `json:"storageClass,omitempty"`

	// Size of each data volume.
	// +kubebuilder:default="50Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="size must be greater than zero"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// AccessModes of each data volume.
	// +kubebuilder:default={"ReadWriteOnce"}
	// +optional
	AccessModes []corev1.PersistentVolumeAccessMode `json:"accessModes,omitempty"`

	// RetentionPolicy says whether data volumes are kept or deleted when
	// the resource is deleted or scaled down; both keep them unless told.
	// +optional
	RetentionPolicy *RetentionPolicy `json:"retentionPolicy,omitempty"`
}

// RetentionPolicy mirrors the StatefulSet's persistentVolumeClaimRetentionPolicy.
type RetentionPolicy struct {
	// WhenDeleted applies when the ChronikStandalone or ChronikCluster is deleted.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	WhenDeleted string `json:"whenDeleted,omitempty"`
	// WhenScaled applies to the volumes of nodes removed by a scale down.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	WhenScaled string `json:"whenScaled,omitempty"`
}

// ObjectStoreSpec is the original's tiered storage target. Chronik (Go)
// keeps every segment on the local volume; a resource that names an
// object store is accepted and the field reported as ignored.
type ObjectStoreSpec struct {
	// +kubebuilder:validation:Enum=s3;gcs;azure;local
	Backend string `json:"backend"`
	// +optional
	Bucket string `json:"bucket,omitempty"`
	// +optional
	Region string `json:"region,omitempty"`
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
	// +optional
	Prefix string `json:"prefix,omitempty"`
}

// SecretKeyRef names one key of a Secret in the resource's namespace.
type SecretKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
}

// VectorSearchSpec is the original's embedding search. Not part of
// Chronik (Go): accepted and reported as ignored.
type VectorSearchSpec struct {
	Enabled bool `json:"enabled"`
	// +optional
	APIKeySecret *SecretKeyRef `json:"apiKeySecret,omitempty"`
	// +kubebuilder:default="text-embedding-3-small"
	// +optional
	Model string `json:"model,omitempty"`
	// +kubebuilder:default="openai"
	// +optional
	Provider string `json:"provider,omitempty"`
}

// EnvVar is one environment variable of the broker container, given as a
// value or taken from a Secret.
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFromSecret)",message="give exactly one of value and valueFromSecret"
type EnvVar struct {
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	Name string `json:"name"`
	// +optional
	Value *string `json:"value,omitempty"`
	// +optional
	ValueFromSecret *SecretKeyRef `json:"valueFromSecret,omitempty"`
}

// PodSecurityContext is the part of the pod security context the
// original exposed.
type PodSecurityContext struct {
	// +kubebuilder:default=1001
	// +optional
	FSGroup *int64 `json:"fsGroup,omitempty"`
	// +optional
	RunAsUser *int64 `json:"runAsUser,omitempty"`
	// +optional
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`
	// +optional
	RunAsNonRoot *bool `json:"runAsNonRoot,omitempty"`
	// +kubebuilder:validation:Enum=OnRootMismatch;Always
	// +optional
	FSGroupChangePolicy *corev1.PodFSGroupChangePolicy `json:"fsGroupChangePolicy,omitempty"`
}

// BrokerSpec holds the fields ChronikStandalone and ChronikCluster share.
type BrokerSpec struct {
	// Image of the chronik broker.
	// +kubebuilder:default="ghcr.io/chronik-go/chronik:latest"
	// +optional
	Image string `json:"image,omitempty"`
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +kubebuilder:default=IfNotPresent
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// +kubebuilder:default={}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`
	// UnifiedAPIPort is the original's HTTP API port (SQL, search, schema
	// registry). Chronik (Go) has no such API: the port is not opened and
	// the status reports no address for it.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=6092
	// +optional
	UnifiedAPIPort int32 `json:"unifiedApiPort,omitempty"`
	// MetricsPort serves /metrics, /healthz and /readyz (the probes use it).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=13092
	// +optional
	MetricsPort int32 `json:"metricsPort,omitempty"`
	// WALProfile is the group-commit profile (CHRONIK_WAL_PROFILE).
	// +kubebuilder:validation:Enum=low;medium;high;ultra
	// +kubebuilder:default=medium
	// +optional
	WALProfile string `json:"walProfile,omitempty"`
	// ProduceProfile bounds in-flight produce memory (CHRONIK_PRODUCE_PROFILE).
	// +kubebuilder:validation:Enum=low-latency;balanced;high-throughput;extreme
	// +kubebuilder:default=balanced
	// +optional
	ProduceProfile string `json:"produceProfile,omitempty"`
	// +kubebuilder:validation:Enum=debug;info;warn;error
	// +kubebuilder:default=info
	// +optional
	LogLevel string `json:"logLevel,omitempty"`
	// ObjectStore is accepted for the original's manifests and ignored.
	// +optional
	ObjectStore *ObjectStoreSpec `json:"objectStore,omitempty"`
	// ColumnarEnabled is accepted for the original's manifests and
	// ignored: Chronik (Go) has no columnar store.
	// +optional
	ColumnarEnabled bool `json:"columnarEnabled,omitempty"`
	// VectorSearch is accepted for the original's manifests and ignored.
	// +optional
	VectorSearch *VectorSearchSpec `json:"vectorSearch,omitempty"`
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Env adds environment variables to the broker container (after the
	// operator's own, so they win).
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []EnvVar `json:"env,omitempty"`
	// +kubebuilder:default={fsGroup:1001}
	// +optional
	PodSecurityContext *PodSecurityContext `json:"podSecurityContext,omitempty"`
}

// ClusterRef names the ChronikCluster or ChronikStandalone a topic, user
// or autoscaler belongs to, in the same namespace.
type ClusterRef struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:validation:Enum=ChronikCluster;ChronikStandalone
	// +kubebuilder:default=ChronikCluster
	// +optional
	Kind string `json:"kind,omitempty"`
}
