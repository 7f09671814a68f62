// Command chronik-operator runs the Chronik Kubernetes operator:
// `chronik-operator start` reconciles the chronik.io resources while it
// holds the leader Lease; `chronik-operator crd-gen` prints the CRDs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chronikoperator "github.com/chronik-go/chronik/operator"
	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
	"github.com/chronik-go/chronik/operator/internal/controller"
)

// Leader election as the original: one Lease, 15 s, renewed every 5 s.
const (
	leaseName     = "chronik-operator-leader"
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 5 * time.Second
)

var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chronik-operator:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: chronik-operator start [flags] | crd-gen | version")
	}
	switch args[0] {
	case "crd-gen":
		_, err := stdout.Write(chronikoperator.CRDs())
		return err
	case "version":
		_, err := fmt.Fprintln(stdout, version)
		return err
	case "start":
		return start(args[1:], stderr)
	}
	return fmt.Errorf("unknown command %q (want start, crd-gen or version)", args[0])
}

func start(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logLevel := fs.String("log-level", "info", "debug|info|error")
	metricsAddr := fs.String("metrics-addr", "0.0.0.0:8080", "address of /metrics, /healthz and /readyz")
	leaderElect := fs.Bool("leader-election", true, "run controllers only while holding the "+leaseName+" Lease")
	clusterDomain := fs.String("cluster-domain", "cluster.local", "DNS suffix of Services")
	namespace := fs.String("namespace", os.Getenv("POD_NAMESPACE"), "namespace of the leader Lease (POD_NAMESPACE)")
	watch := fs.String("watch-namespaces", "", "comma-separated namespaces to reconcile (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	levels := map[string]zapcore.Level{"debug": zapcore.DebugLevel, "info": zapcore.InfoLevel, "error": zapcore.ErrorLevel}
	level, ok := levels[*logLevel]
	if !ok {
		return fmt.Errorf("--log-level %q: want debug, info or error", *logLevel)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(stderr), zap.Level(level), zap.StacktraceLevel(zapcore.PanicLevel)))
	if *leaderElect && *namespace == "" {
		return errors.New("leader election needs the Lease's namespace: set POD_NAMESPACE or --namespace")
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := chronikv1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}

	metrics := controller.NewMetrics(crmetrics.Registry)
	// Ready once the informer caches have synced (leader or standby: a
	// standby is ready to take over).
	var mgr manager.Manager
	ready := healthz.Checker(func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if mgr == nil || !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("caches not synced")
		}
		return nil
	})
	opts := ctrl.Options{
		Scheme: scheme,
		Metrics: metricsserver.Options{
			BindAddress: *metricsAddr,
			// One port for metrics and probes, as the original.
			ExtraHandlers: map[string]http.Handler{
				"/healthz": http.StripPrefix("/healthz", &healthz.Handler{Checks: map[string]healthz.Checker{"ping": healthz.Ping}}),
				"/readyz":  http.StripPrefix("/readyz", &healthz.Handler{Checks: map[string]healthz.Checker{"ready": ready}}),
			},
		},
		HealthProbeBindAddress:        "0",
		Cache:                         cache.Options{DefaultNamespaces: watchNamespaces(*watch)},
		LeaderElection:                *leaderElect,
		LeaderElectionReleaseOnCancel: true,
	}
	if *leaderElect {
		lock, err := leaderLock(cfg, *namespace)
		if err != nil {
			return err
		}
		opts.LeaderElectionResourceLockInterface = lock
		opts.LeaseDuration = ptrTo(leaseDuration)
		opts.RenewDeadline = ptrTo(renewDeadline)
		opts.RetryPeriod = ptrTo(retryPeriod)
	}
	mgr, err = ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	env := &controller.Env{
		Client:        mgr.GetClient(),
		Scheme:        scheme,
		Recorder:      mgr.GetEventRecorder("chronik-operator"),
		ClusterDomain: *clusterDomain,
	}
	if err := controller.SetupAll(mgr, env, metrics); err != nil {
		return err
	}
	// chronik_operator_leader follows the Lease: 1 once won. Losing it
	// ends the process (controller-runtime exits), so it never goes back.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		select {
		case <-mgr.Elected():
			metrics.Leader.Set(1)
			ctrl.Log.Info("leading", "lease", leaseName, "identity", identity())
		case <-ctx.Done():
		}
		<-ctx.Done()
		metrics.Leader.Set(0)
		return nil
	})); err != nil {
		return err
	}
	ctrl.Log.Info("starting", "version", version, "leaderElection", *leaderElect, "identity", identity())
	return mgr.Start(ctrl.SetupSignalHandler())
}

// leaderLock is the original's Lease, held under this pod's name.
func leaderLock(cfg *rest.Config, namespace string) (resourcelock.Interface, error) {
	return resourcelock.NewFromKubeconfig(resourcelock.LeasesResourceLock, namespace, leaseName,
		resourcelock.ResourceLockConfig{Identity: identity()}, cfg, renewDeadline)
}

// identity is POD_NAME, else the host name.
func identity() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

// watchNamespaces is the cache's namespace set; nil watches all.
func watchNamespaces(list string) map[string]cache.Config {
	var out map[string]cache.Config
	for _, ns := range strings.Split(list, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			if out == nil {
				out = map[string]cache.Config{}
			}
			out[ns] = cache.Config{}
		}
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }
