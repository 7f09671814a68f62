package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// TestUserNotProvisioned: until the broker has SASL/SCRAM and ACLs, a
// ChronikUser says so and nothing is created.
func TestUserNotProvisioned(t *testing.T) {
	ctx := context.Background()
	u := &chronikv1.ChronikUser{
		ObjectMeta: metav1.ObjectMeta{Name: "app-producer", Namespace: "user"},
		Spec: chronikv1.ChronikUserSpec{
			ClusterRef:     chronikv1.ClusterRef{Name: "prod"},
			Authentication: chronikv1.UserAuthentication{Type: "sasl-scram-sha-512"},
			Authorization: &chronikv1.UserAuthorization{ACLs: []chronikv1.ACL{{
				Resource:   chronikv1.ACLResource{Type: "topic", Name: "orders"},
				Operations: []string{"Write", "Describe"},
			}}},
		},
	}
	if err := k8s.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	if u.Spec.Authorization.ACLs[0].Effect != "Allow" || u.Spec.Authorization.ACLs[0].Resource.PatternType != "literal" {
		t.Fatalf("defaults not applied: %+v", u.Spec.Authorization.ACLs[0])
	}
	eventually(t, time.Minute, "status", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			return err
		}
		if u.Status.Phase != "Pending" || u.Status.CredentialsSecret != "" {
			return fmt.Errorf("status %+v", u.Status)
		}
		if err := wantCondition(u.Status.Conditions, "Ready", metav1.ConditionFalse, ReasonSecurityNotSupported); err != nil {
			return err
		}
		return wantCondition(u.Status.Conditions, "Degraded", metav1.ConditionTrue, ReasonSecurityNotSupported)
	})
	var secrets corev1.SecretList
	if err := k8s.List(ctx, &secrets, client.InNamespace("user")); err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != 0 {
		t.Fatalf("secrets created: %v", secrets.Items)
	}
}
