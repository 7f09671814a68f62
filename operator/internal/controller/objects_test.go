package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

func TestStandaloneObjects(t *testing.T) {
	ctx := context.Background()
	s := &chronikv1.ChronikStandalone{ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: "standalone"}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	// The API server applied the CRD's defaults (the original's).
	if s.Spec.KafkaPort != 9092 || s.Spec.MetricsPort != 13092 || s.Spec.WALProfile != "medium" ||
		s.Spec.ProduceProfile != "balanced" || s.Spec.Storage.Size == nil || s.Spec.Storage.Size.String() != "50Gi" ||
		s.Spec.PodSecurityContext == nil || *s.Spec.PodSecurityContext.FSGroup != 1001 {
		t.Fatalf("defaults not applied: %+v", s.Spec)
	}
	key := client.ObjectKey{Namespace: "standalone", Name: "solo"}

	var sts appsv1.StatefulSet
	eventually(t, time.Minute, "StatefulSet", func() error { return k8s.Get(ctx, key, &sts) })
	checkOwner(t, &sts, s, "ChronikStandalone")
	if *sts.Spec.Replicas != 1 || sts.Spec.ServiceName != "solo" {
		t.Fatalf("StatefulSet: replicas %d service %q", *sts.Spec.Replicas, sts.Spec.ServiceName)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().Cmp(resource.MustParse("50Gi")) != 0 {
		t.Fatalf("volume claim templates: %+v", sts.Spec.VolumeClaimTemplates)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Port.StrVal != "metrics" {
		t.Fatalf("probes: readiness %+v liveness %+v", c.ReadinessProbe.HTTPGet, c.LivenessProbe.HTTPGet)
	}
	if a := sts.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "13092" || a[AnnotationConfigHash] == "" {
		t.Fatalf("pod annotations: %v", a)
	}
	if got := envValue(c.Env, "CHRONIK_WAL_PROFILE"); got != "medium" {
		t.Fatalf("CHRONIK_WAL_PROFILE = %q", got)
	}
	if sts.Spec.Template.Spec.SecurityContext == nil || *sts.Spec.Template.Spec.SecurityContext.FSGroup != 1001 {
		t.Fatalf("pod security context: %+v", sts.Spec.Template.Spec.SecurityContext)
	}

	var svc corev1.Service
	eventually(t, time.Minute, "Service", func() error { return k8s.Get(ctx, key, &svc) })
	checkOwner(t, &svc, s, "ChronikStandalone")
	if ports := servicePorts(&svc); ports != "kafka:9092,metrics:13092" {
		t.Fatalf("Service ports %s", ports)
	}
	var cm corev1.ConfigMap
	eventually(t, time.Minute, "ConfigMap", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: "standalone", Name: "solo-config"}, &cm)
	})
	checkOwner(t, &cm, s, "ChronikStandalone")
	if conf := cm.Data[standaloneConfigKey]; !strings.Contains(conf, `advertise = "solo.standalone.svc.cluster.local:9092"`) {
		t.Fatalf("config:\n%s", conf)
	}

	// No kubelet runs here: the pod never becomes ready, and the status says so.
	eventually(t, time.Minute, "status", func() error {
		if err := k8s.Get(ctx, key, s); err != nil {
			return err
		}
		if s.Status.Phase != "Pending" || s.Status.KafkaAddress != "solo.standalone.svc.cluster.local:9092" {
			return fmt.Errorf("status %+v", s.Status)
		}
		if err := wantCondition(s.Status.Conditions, "Ready", metav1.ConditionFalse, ""); err != nil {
			return err
		}
		return wantCondition(s.Status.Conditions, "Progressing", metav1.ConditionTrue, "WaitingForBroker")
	})

	// A spec change reaches the StatefulSet and changes the config hash.
	oldHash := sts.Spec.Template.Annotations[AnnotationConfigHash]
	s.Spec.KafkaPort = 9093
	s.Spec.WALProfile = "high"
	if err := k8s.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "StatefulSet after spec change", func() error {
		if err := k8s.Get(ctx, key, &sts); err != nil {
			return err
		}
		c := sts.Spec.Template.Spec.Containers[0]
		if envValue(c.Env, "CHRONIK_WAL_PROFILE") != "high" || sts.Spec.Template.Annotations[AnnotationConfigHash] == oldHash {
			return fmt.Errorf("not updated: env %v, hash %s", c.Env, sts.Spec.Template.Annotations[AnnotationConfigHash])
		}
		return nil
	})
}

func TestClusterObjects(t *testing.T) {
	ctx := context.Background()
	c := &chronikv1.ChronikCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "trio", Namespace: "cluster"},
		Spec: chronikv1.ChronikClusterSpec{
			AntiAffinity: "required",
			Listeners:    []chronikv1.Listener{{Name: "plain", Port: 9094}},
		},
	}
	if err := k8s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.Spec.Replicas != 3 || c.Spec.ReplicationFactor != 3 || c.Spec.MinInsyncReplicas != 2 || c.Spec.RaftPort != 5001 {
		t.Fatalf("defaults not applied: %+v", c.Spec)
	}
	key := client.ObjectKey{Namespace: "cluster", Name: "trio"}

	var sts appsv1.StatefulSet
	eventually(t, time.Minute, "StatefulSet", func() error { return k8s.Get(ctx, key, &sts) })
	checkOwner(t, &sts, c, "ChronikCluster")
	if *sts.Spec.Replicas != 3 || sts.Spec.ServiceName != "trio-headless" ||
		sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement ||
		sts.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
		t.Fatalf("StatefulSet spec: %+v", sts.Spec)
	}
	aff := sts.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 ||
		aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey != "kubernetes.io/hostname" {
		t.Fatalf("anti-affinity: %+v", aff)
	}
	if p := sts.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType || p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Fatalf("PVC retention: %+v", p)
	}
	ctr := sts.Spec.Template.Spec.Containers[0]
	if strings.Join(ctr.Args, " ") != "server --config /etc/chronik/$(POD_NAME).toml" {
		t.Fatalf("args %v", ctr.Args)
	}

	var headless, svc corev1.Service
	eventually(t, time.Minute, "headless Service", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: "cluster", Name: "trio-headless"}, &headless)
	})
	checkOwner(t, &headless, c, "ChronikCluster")
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("headless Service: %+v", headless.Spec)
	}
	if p := servicePorts(&headless); p != "kafka:9094,metrics:13092,raft:5001" {
		t.Fatalf("headless ports %s", p)
	}
	eventually(t, time.Minute, "client Service", func() error { return k8s.Get(ctx, key, &svc) })
	checkOwner(t, &svc, c, "ChronikCluster")
	if svc.Spec.ClusterIP == corev1.ClusterIPNone || servicePorts(&svc) != "kafka:9094,metrics:13092" {
		t.Fatalf("client Service: %+v", svc.Spec)
	}
	var pdb policyv1.PodDisruptionBudget
	eventually(t, time.Minute, "PodDisruptionBudget", func() error { return k8s.Get(ctx, key, &pdb) })
	checkOwner(t, &pdb, c, "ChronikCluster")
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Fatalf("PDB: %+v", pdb.Spec)
	}

	var cm corev1.ConfigMap
	eventually(t, time.Minute, "ConfigMap", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: "cluster", Name: "trio-config"}, &cm)
	})
	checkOwner(t, &cm, c, "ChronikCluster")
	if len(cm.Data) != 3 {
		t.Fatalf("ConfigMap keys %v", sortedKeys(cm.Data))
	}
	node2 := cm.Data["trio-1.toml"]
	for _, want := range []string{
		"node_id = 2",
		`kafka = "trio-1.trio-headless.cluster.svc.cluster.local:9094"`,
		`raft = "trio-0.trio-headless.cluster.svc.cluster.local:5001"`,
		"replication_factor = 3", "min_insync_replicas = 2",
	} {
		if !strings.Contains(node2, want) {
			t.Fatalf("trio-1.toml lacks %q:\n%s", want, node2)
		}
	}

	// No brokers run here: the cluster is bootstrapping and says so.
	eventually(t, time.Minute, "status", func() error {
		if err := k8s.Get(ctx, key, c); err != nil {
			return err
		}
		if c.Status.Phase != "Bootstrapping" || c.Status.DesiredNodes != 3 || c.Status.HeadlessService != "trio-headless" ||
			len(c.Status.Listeners) != 1 || c.Status.Listeners[0].BootstrapServers != "trio.cluster.svc.cluster.local:9094" {
			return fmt.Errorf("status %+v", c.Status)
		}
		return wantCondition(c.Status.Conditions, "Ready", metav1.ConditionFalse, "BrokersNotReady")
	})

	// Scaling needs membership changes: refused, nothing changes.
	c.Spec.Replicas = 5
	if err := k8s.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "scale refused", func() error {
		if err := k8s.Get(ctx, key, c); err != nil {
			return err
		}
		if err := wantCondition(c.Status.Conditions, "Degraded", metav1.ConditionTrue, "ScalingNotSupported"); err != nil {
			return err
		}
		cond, _ := condition(c.Status.Conditions, "Degraded")
		if !strings.Contains(cond.Message, "set spec.replicas back to 3") {
			return fmt.Errorf("message %q", cond.Message)
		}
		return nil
	})
	if err := k8s.Get(ctx, key, &sts); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "cluster", Name: "trio-config"}, &cm); err != nil {
		t.Fatal(err)
	}
	if *sts.Spec.Replicas != 3 || len(cm.Data) != 3 {
		t.Fatalf("scale applied anyway: StatefulSet %d replicas, %d config files", *sts.Spec.Replicas, len(cm.Data))
	}
	// Back to 3: the refusal clears.
	c.Spec.Replicas = 3
	if err := k8s.Update(ctx, c); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "refusal cleared", func() error {
		if err := k8s.Get(ctx, key, c); err != nil {
			return err
		}
		if cond, err := condition(c.Status.Conditions, "Degraded"); err != nil || cond.Reason == "ScalingNotSupported" {
			return fmt.Errorf("still refused: %v %w", cond, err)
		}
		return nil
	})
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func servicePorts(s *corev1.Service) string {
	var out []string
	for _, p := range s.Spec.Ports {
		out = append(out, fmt.Sprintf("%s:%d", p.Name, p.Port))
	}
	return strings.Join(out, ",")
}
