package controller

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// The tests run against a real kube-apiserver and etcd (envtest), built
// from the Go module proxy by hack/kube-tools.sh and cached outside the
// clone. One operator runs in-process for the namespaces below; the
// leader-election test runs operator processes on a namespace of their own.
var (
	testEnv    *envtest.Environment
	restCfg    *rest.Config
	k8s        client.Client
	testScheme = runtime.NewScheme()
	bootstraps sync.Map // "namespace/name" -> Kafka address of a broker the test runs
)

// Namespaces the in-process operator reconciles.
var managedNamespaces = []string{"standalone", "cluster", "topic", "user", "validation", "autoscaler"}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		// Build (once per machine) or find the control plane binaries.
		cmd := exec.Command(filepath.Join(moduleRoot(), "hack", "kube-tools.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "hack/kube-tools.sh failed: the tests need kube-apiserver and etcd:", err)
			return 1
		}
		assets = strings.TrimSpace(string(out))
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapLevel()), zap.StacktraceLevel(zapcore.PanicLevel)))

	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, chronikv1.AddToScheme} {
		if err := add(testScheme); err != nil {
			panic(err)
		}
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join(moduleRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	// No kubelet or node registers endpoints for the apiserver itself.
	testEnv.ControlPlane.GetAPIServer().Configure().Set("endpoint-reconciler-type", "none")
	var err error
	restCfg, err = testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start kube-apiserver and etcd:", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}()
	k8s, err = client.New(restCfg, client.Options{Scheme: testScheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range append(managedNamespaces, "leader") {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			fmt.Fprintln(os.Stderr, "create namespace:", err)
			return 1
		}
	}

	nsCache := map[string]cache.Config{}
	for _, ns := range managedNamespaces {
		nsCache[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: nsCache},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	env := &Env{
		Client:        mgr.GetClient(),
		Scheme:        testScheme,
		Recorder:      mgr.GetEventRecorder("chronik-operator"),
		ClusterDomain: "cluster.local",
		// The brokers these tests run listen on loopback, not behind a
		// Service: the harness says where.
		Bootstrap: func(namespace, kind, name string, port int32) []string {
			if v, ok := bootstraps.Load(namespace + "/" + name); ok {
				return []string{v.(string)}
			}
			return []string{fmt.Sprintf("%s:%d", serviceHost(name, namespace, "cluster.local"), port)}
		},
	}
	if err := SetupAll(mgr, env, NewMetrics(prometheus.NewRegistry())); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	return code
}

// zapLevel logs errors only unless OPERATOR_TEST_DEBUG is set.
func zapLevel() zapcore.Level {
	if os.Getenv("OPERATOR_TEST_DEBUG") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// moduleRoot is the operator module's directory.
func moduleRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Join(wd, "..", "..")
}

// eventually polls fn until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// condition returns one condition of a list, or an error naming what is there.
func condition(conds []metav1.Condition, typ string) (metav1.Condition, error) {
	for _, c := range conds {
		if c.Type == typ {
			return c, nil
		}
	}
	return metav1.Condition{}, fmt.Errorf("no %s condition in %v", typ, conds)
}

// wantCondition checks one condition's status and reason.
func wantCondition(conds []metav1.Condition, typ string, status metav1.ConditionStatus, reason string) error {
	c, err := condition(conds, typ)
	if err != nil {
		return err
	}
	if c.Status != status || (reason != "" && c.Reason != reason) {
		return fmt.Errorf("%s is %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
	}
	return nil
}

// checkOwner checks that obj is controlled by owner.
func checkOwner(t *testing.T, obj, owner client.Object, kind string) {
	t.Helper()
	refs := obj.GetOwnerReferences()
	if len(refs) != 1 || refs[0].Kind != kind || refs[0].Name != owner.GetName() || refs[0].UID != owner.GetUID() ||
		refs[0].Controller == nil || !*refs[0].Controller {
		t.Fatalf("%s %s: owner references %+v, want the controlling %s %s", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), refs, kind, owner.GetName())
	}
}
