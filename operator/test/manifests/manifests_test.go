// Package manifests checks the deployment material outside this module
// (deploy/helm/chronik-operator, deploy/k8s/examples) against the real
// kube-apiserver: helm lint, helm template, and a server-side dry run of
// every rendered object with strict field validation.
package manifests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

const kubeVersion = "1.37.2" // what hack/kube-tools.sh builds

var (
	repoRoot = filepath.Join("..", "..", "..")
	chart    = filepath.Join(repoRoot, "deploy", "helm", "chronik-operator")
)

func TestHelmChart(t *testing.T) {
	helm := tool(t, "helm.sh")
	k8s := controlPlane(t, false)
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "chronik-system"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  []string
		want []string // kinds rendered, in order
	}{
		{"defaults", nil, []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"}},
		{"service monitor, one namespace, two replicas", []string{"metrics.serviceMonitor.enabled=true", "watchNamespaces=apps", "replicaCount=2"},
			[]string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment", "ServiceMonitor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--kube-version", kubeVersion}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			run(t, helm, append([]string{"lint", "--strict", chart}, args...)...)
			out := run(t, helm, append([]string{"template", "rel", chart, "--namespace", "chronik-system", "--include-crds"}, args...)...)
			objs := decode(t, out)
			var kinds []string
			crds := 0
			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" {
					crds++
					continue
				}
				kinds = append(kinds, o.GetKind())
			}
			if crds != 5 || strings.Join(kinds, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("rendered %d CRDs and %v; want 5 and %v", crds, kinds, tc.want)
			}
			for _, o := range objs {
				if o.GetKind() == "ServiceMonitor" {
					// No Prometheus Operator here: check the object against
					// its Go type, strictly.
					b, err := yaml.Marshal(o.Object)
					if err != nil {
						t.Fatal(err)
					}
					var sm monitoringv1.ServiceMonitor
					if err := yaml.UnmarshalStrict(b, &sm); err != nil {
						t.Fatalf("ServiceMonitor: %v", err)
					}
					if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
						t.Fatalf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
					}
					continue
				}
				dryRun(t, k8s, o)
			}
		})
	}
	// The chart's Deployment runs the operator with the values given.
	out := run(t, helm, "template", "rel", chart, "--kube-version", kubeVersion, "--namespace", "chronik-system",
		"--set", "watchNamespaces=apps", "--set", "logLevel=debug", "--set", "leaderElection.enabled=false")
	for _, want := range []string{"- start", "--log-level=debug", "--metrics-addr=0.0.0.0:8080", "--leader-election=false", "--watch-namespaces=apps", "path: /readyz"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("rendered chart lacks %q:\n%s", want, out)
		}
	}
}

// TestExamples applies every example with a server-side dry run against
// the CRDs: the API server's defaulting and validation accept each.
func TestExamples(t *testing.T) {
	k8s := controlPlane(t, true)
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "k8s", "examples", "*.yaml"))
	if err != nil || len(files) < 6 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			objs := decode(t, b)
			if len(objs) == 0 {
				t.Fatal("no objects")
			}
			for _, o := range objs {
				if o.GetNamespace() == "" {
					o.SetNamespace("default")
				}
				dryRun(t, k8s, o)
			}
		})
	}
}

// dryRun creates obj with a server-side dry run and strict field validation.
func dryRun(t *testing.T, k8s client.Client, obj *unstructured.Unstructured) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
		t.Fatalf("%s %s refused by the API server: %v", obj.GetKind(), obj.GetName(), err)
	}
}

// decode splits a YAML stream into objects.
func decode(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatal(err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// tool runs a hack/ script that builds a tool once per machine and prints where it is.
func tool(t *testing.T, script string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join("..", "..", "hack", script))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/%s: %v", script, err)
	}
	return strings.TrimSpace(string(out))
}

// controlPlane starts kube-apiserver and etcd, with the CRDs when asked.
func controlPlane(t *testing.T, crds bool) client.Client {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = tool(t, "kube-tools.sh")
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if crds {
		env.CRDDirectoryPaths = []string{filepath.Join("..", "..", "config", "crd", "bases")}
		env.ErrorIfCRDPathMissing = true
	}
	env.ControlPlane.GetAPIServer().Configure().Set("endpoint-reconciler-type", "none")
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	k8s, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(fmt.Errorf("client: %w", err))
	}
	return k8s
}
