package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UserAuthentication is how the user proves who it is.
type UserAuthentication struct {
	// +kubebuilder:validation:Enum=sasl-scram-sha-256;sasl-scram-sha-512;sasl-plain;tls
	Type string `json:"type"`
	// PasswordSecret holds the password; generated when absent.
	// +optional
	PasswordSecret *SecretKeyRef `json:"passwordSecret,omitempty"`
}

// ACLResource is what an ACL applies to.
type ACLResource struct {
	// +kubebuilder:validation:Enum=topic;group;cluster;transactionalId
	Type string `json:"type"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:validation:Enum=literal;prefixed
	// +kubebuilder:default=literal
	// +optional
	PatternType string `json:"patternType,omitempty"`
}

// ACL is one access rule.
type ACL struct {
	Resource ACLResource `json:"resource"`
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:Enum=All;Read;Write;Create;Delete;Alter;Describe;ClusterAction;DescribeConfigs;AlterConfigs;IdempotentWrite
	Operations []string `json:"operations"`
	// +kubebuilder:validation:Enum=Allow;Deny
	// +kubebuilder:default=Allow
	// +optional
	Effect string `json:"effect,omitempty"`
}

// UserAuthorization lists the user's ACLs.
type UserAuthorization struct {
	// +kubebuilder:validation:MaxItems=256
	// +optional
	ACLs []ACL `json:"acls,omitempty"`
}

// UserSchemaRegistry is the original's schema registry role; accepted and ignored.
type UserSchemaRegistry struct {
	Enabled bool `json:"enabled"`
	// +kubebuilder:default=readwrite
	// +optional
	Role string `json:"role,omitempty"`
}

// ChronikUserSpec is a Kafka user: credentials and ACLs.
type ChronikUserSpec struct {
	ClusterRef     ClusterRef         `json:"clusterRef"`
	Authentication UserAuthentication `json:"authentication"`
	// +optional
	Authorization *UserAuthorization `json:"authorization,omitempty"`
	// +optional
	SchemaRegistry *UserSchemaRegistry `json:"schemaRegistry,omitempty"`
}

// ChronikUserStatus is what the operator last observed.
type ChronikUserStatus struct {
	// +optional
	Phase string `json:"phase,omitempty"`
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
	// +optional
	ACLCount int32 `json:"aclCount"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ChronikUser is a Kafka user with its credentials and ACLs.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cuser,categories=chronik
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterRef.name`
// +kubebuilder:printcolumn:name="Auth",type=string,JSONPath=`.spec.authentication.type`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChronikUser struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ChronikUserSpec `json:"spec"`
	// +optional
	Status ChronikUserStatus `json:"status,omitempty"`
}

// ChronikUserList is a list of ChronikUser.
//
// +kubebuilder:object:root=true
type ChronikUserList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChronikUser `json:"items"`
}
