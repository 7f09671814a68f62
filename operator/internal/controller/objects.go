// Package controller reconciles the chronik.io kinds into Kubernetes
// objects and Kafka state. Builders (objects.go, cluster_objects.go) are
// pure functions of a spec; reconcilers apply what they build with
// server-side apply, read back what the cluster reports, and write status.
// Nothing here talks to a broker except through the Kafka protocol
// (kafka.go).
package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// Labels and annotations the operator puts on what it creates (the
// original's names).
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelCluster   = "chronik.io/cluster-name"
	LabelNodeID    = "chronik.io/node-id"

	appName   = "chronik-stream"
	managedBy = "chronik-operator"

	ComponentStandalone = "standalone"
	ComponentCluster    = "cluster-node"

	// AnnotationConfigHash on a pod template changes whenever the
	// generated configuration does, so a config change rolls the pods.
	AnnotationConfigHash = "chronik.io/config-hash"

	// Finalizer is the original's finalizer name.
	Finalizer = "chronik.io/operator-cleanup"

	// FieldOwner is the server-side apply manager of everything the operator writes.
	FieldOwner = "chronik-operator"

	dataVolume   = "data"
	configVolume = "config"
	dataDir      = "/data"
	configDir    = "/etc/chronik"

	portNameKafka   = "kafka"
	portNameMetrics = "metrics"
	portNameRaft    = "raft"
)

// labelsFor are the labels of every object of one instance.
func labelsFor(instance, component string) map[string]string {
	return map[string]string{
		LabelName:      appName,
		LabelInstance:  instance,
		LabelComponent: component,
		LabelManagedBy: managedBy,
		LabelCluster:   instance,
	}
}

// selectorFor is the part of labelsFor that selects pods; it never
// changes for an instance (a StatefulSet's selector is immutable).
func selectorFor(instance, component string) map[string]string {
	return map[string]string{
		LabelName:      appName,
		LabelInstance:  instance,
		LabelComponent: component,
	}
}

// serviceHost is the DNS name of a Service.
func serviceHost(svc, namespace, domain string) string {
	return fmt.Sprintf("%s.%s.svc.%s", svc, namespace, domain)
}

// hashOf is a short stable digest of generated configuration.
func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// brokerEnv is the environment every broker container gets: the
// original's profile variables, then the user's (later entries win in
// Kubernetes, so the user's override ours).
func brokerEnv(spec *chronikv1.BrokerSpec, extra ...corev1.EnvVar) []corev1.EnvVar {
	env := append([]corev1.EnvVar{}, extra...)
	env = append(env,
		corev1.EnvVar{Name: "CHRONIK_WAL_PROFILE", Value: spec.WALProfile},
		corev1.EnvVar{Name: "CHRONIK_PRODUCE_PROFILE", Value: spec.ProduceProfile},
		corev1.EnvVar{Name: "CHRONIK_LOG_LEVEL", Value: spec.LogLevel},
	)
	for _, e := range spec.Env {
		v := corev1.EnvVar{Name: e.Name}
		if e.Value != nil {
			v.Value = *e.Value
		} else if e.ValueFromSecret != nil {
			v.ValueFrom = &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: e.ValueFromSecret.Name},
				Key:                  e.ValueFromSecret.Key,
			}}
		}
		env = append(env, v)
	}
	return env
}

// brokerContainer is the chronik container of either kind. The probes
// use the broker's own endpoints on the metrics port: /healthz (the
// process is alive) for liveness and start-up, /readyz (partitions loaded,
// cluster joined) for readiness. Start-up allows for a long recovery.
func brokerContainer(spec *chronikv1.BrokerSpec, kafkaPort int32, args []string, env []corev1.EnvVar, ports ...corev1.ContainerPort) corev1.Container {
	metrics := intstr.FromString(portNameMetrics)
	ports = append([]corev1.ContainerPort{
		{Name: portNameKafka, ContainerPort: kafkaPort, Protocol: corev1.ProtocolTCP},
		{Name: portNameMetrics, ContainerPort: spec.MetricsPort, Protocol: corev1.ProtocolTCP},
	}, ports...)
	return corev1.Container{
		Name:            "chronik",
		Image:           spec.Image,
		ImagePullPolicy: spec.ImagePullPolicy,
		Command:         []string{"chronik"},
		Args:            args,
		Env:             env,
		Ports:           ports,
		Resources:       spec.Resources,
		VolumeMounts: []corev1.VolumeMount{
			{Name: dataVolume, MountPath: dataDir},
			{Name: configVolume, MountPath: configDir, ReadOnly: true},
		},
		StartupProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: metrics}},
			PeriodSeconds:    5,
			FailureThreshold: 120, // ten minutes to open the logs
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: metrics}},
			PeriodSeconds:    10,
			TimeoutSeconds:   5,
			FailureThreshold: 6,
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: metrics}},
			PeriodSeconds:    5,
			TimeoutSeconds:   3,
			FailureThreshold: 3,
		},
	}
}

// podSecurityContext turns the CRD's subset into the pod's.
func podSecurityContext(p *chronikv1.PodSecurityContext) *corev1.PodSecurityContext {
	if p == nil {
		return nil
	}
	return &corev1.PodSecurityContext{
		FSGroup:             p.FSGroup,
		RunAsUser:           p.RunAsUser,
		RunAsGroup:          p.RunAsGroup,
		RunAsNonRoot:        p.RunAsNonRoot,
		FSGroupChangePolicy: p.FSGroupChangePolicy,
	}
}

// metricsAnnotations let a Prometheus that scrapes by annotation find
// the brokers' metrics port.
func metricsAnnotations(port int32, hash string) map[string]string {
	return map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(int(port)),
		"prometheus.io/path":   "/metrics",
		AnnotationConfigHash:   hash,
	}
}

// ignoredFields lists the spec fields that are accepted for the
// original's manifests and have no effect here, for an event.
func ignoredFields(spec *chronikv1.BrokerSpec) []string {
	var out []string
	if spec.ObjectStore != nil {
		out = append(out, "objectStore")
	}
	if spec.ColumnarEnabled {
		out = append(out, "columnarEnabled")
	}
	if spec.VectorSearch != nil && spec.VectorSearch.Enabled {
		out = append(out, "vectorSearch")
	}
	return out
}

// mergedAnnotations copies a and adds b.
func mergedAnnotations(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// tomlString quotes a string for TOML.
func tomlString(s string) string {
	return strconv.Quote(s)
}

// storageClass is nil for the cluster's default class.
func storageClass(s chronikv1.StorageSpec) *string {
	if s.StorageClass == "" {
		return nil
	}
	return ptr.To(s.StorageClass)
}

// joinLines joins lines with a trailing newline.
func joinLines(lines []string) string {
	return strings.Join(lines, "\n") + "\n"
}
