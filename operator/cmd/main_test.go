package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	chronikoperator "github.com/chronik-go/chronik/operator"
	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// operatorProc is one chronik-operator process.
type operatorProc struct {
	name    string
	metrics string
	cmd     *exec.Cmd
	exited  chan error
	log     *bytes.Buffer
}

// TestLeaderElection runs two operator processes against a real
// kube-apiserver: one holds the chronik-operator-leader Lease and
// reconciles, the other waits; kill -9 of the leader hands the Lease to
// the other within the lease duration plus one retry, and a clean stop
// releases it at once.
func TestLeaderElection(t *testing.T) {
	env, k8s := controlPlane(t)
	bin := filepath.Join(t.TempDir(), "chronik-operator")
	// -race: the process is checked too, and it shares the test build's cache.
	if out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The operators run as a user that has only the generated ClusterRole:
	// a missing rule shows up as caches that never sync or a failed write.
	user, err := env.AddUser(envtest.User{Name: "chronik-operator"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bindGeneratedRole(t, k8s, "chronik-operator")
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ops"}}); err != nil {
		t.Fatal(err)
	}

	start := func(name string) *operatorProc {
		p := &operatorProc{name: name, metrics: "127.0.0.1:" + strconv.Itoa(freePort(t)), exited: make(chan error, 1), log: &bytes.Buffer{}}
		p.cmd = exec.Command(bin, "start", "--metrics-addr", p.metrics, "--watch-namespaces", "ops")
		p.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "POD_NAME="+name, "POD_NAMESPACE=ops")
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.exited <- p.cmd.Wait() }()
		t.Cleanup(func() {
			_ = p.cmd.Process.Kill()
			<-p.exited
			if t.Failed() {
				t.Logf("%s log:\n%s", name, p.log)
			}
		})
		return p
	}
	a, b := start("op-a"), start("op-b")
	procs := map[string]*operatorProc{"op-a": a, "op-b": b}

	holder := func() string {
		var l coordinationv1.Lease
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "ops", Name: leaseName}, &l); err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	var leader string
	eventually(t, 2*time.Minute, "a leader", func() error {
		if leader = holder(); leader == "" {
			return fmt.Errorf("no holder of Lease %s", leaseName)
		}
		return nil
	})
	first := procs[leader]
	other := a
	if first == a {
		other = b
	}
	for _, p := range []*operatorProc{first, other} {
		for _, path := range []string{"/healthz", "/readyz"} {
			eventually(t, time.Minute, p.name+path, func() error { return httpOK(p.metrics + path) })
		}
	}
	eventually(t, time.Minute, "leader gauge", func() error {
		if v := metric(t, first.metrics, "chronik_operator_leader"); v != "1" {
			return fmt.Errorf("%s: chronik_operator_leader %q", first.name, v)
		}
		if v := metric(t, other.metrics, "chronik_operator_leader"); v != "0" {
			return fmt.Errorf("%s: chronik_operator_leader %q", other.name, v)
		}
		return nil
	})

	// Only the leader reconciles.
	reconciled(t, k8s, "first", first)
	if v := metric(t, other.metrics, `chronik_operator_reconciliations_total{controller="chronikuser",result="success"}`); v != "" {
		t.Fatalf("the standby reconciled: %s", v)
	}

	// kill -9 of the leader: the standby takes the Lease once it expires.
	killed := time.Now()
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "takeover", func() error {
		if h := holder(); h != other.name {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	took := time.Since(killed)
	t.Logf("%s took over %s after kill -9 of %s (lease %s, retry %s)", other.name, took.Round(100*time.Millisecond), first.name, leaseDuration, retryPeriod)
	// The Lease can have been renewed just before the kill: it expires
	// leaseDuration later and the standby tries every retryPeriod. The
	// slack covers a loaded machine, not a wrong protocol.
	if limit := leaseDuration + retryPeriod + 15*time.Second; took > limit {
		t.Fatalf("takeover took %s, more than %s", took, limit)
	}
	eventually(t, time.Minute, "new leader gauge", func() error {
		if v := metric(t, other.metrics, "chronik_operator_leader"); v != "1" {
			return fmt.Errorf("chronik_operator_leader %q", v)
		}
		return nil
	})
	reconciled(t, k8s, "second", other)

	// SIGTERM: the leader releases the Lease on its way out and exits 0.
	if err := other.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-other.exited:
		other.exited <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("no exit within a minute of SIGTERM")
	}
	if h := holder(); h != "" {
		t.Fatalf("Lease still held by %q after a clean stop", h)
	}
}

// bindGeneratedRole creates config/rbac/role.yaml and binds it to a user.
func bindGeneratedRole(t *testing.T, k8s client.Client, user string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &role); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := k8s.Create(ctx, &role); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}); err != nil {
		t.Fatal(err)
	}
}

// reconciled creates a ChronikUser and waits for p to write its status.
func reconciled(t *testing.T, k8s client.Client, name string, p *operatorProc) {
	t.Helper()
	u := &chronikv1.ChronikUser{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ops"},
		Spec: chronikv1.ChronikUserSpec{ClusterRef: chronikv1.ClusterRef{Name: "c"},
			Authentication: chronikv1.UserAuthentication{Type: "sasl-scram-sha-256"}},
	}
	if err := k8s.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "user "+name+" reconciled", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(u), u); err != nil {
			return err
		}
		if u.Status.Phase != "Pending" {
			return fmt.Errorf("status %+v", u.Status)
		}
		return nil
	})
	eventually(t, time.Minute, "reconciliation counted", func() error {
		v := metric(t, p.metrics, `chronik_operator_reconciliations_total{controller="chronikuser",result="success"}`)
		if n, err := strconv.ParseFloat(v, 64); err != nil || n < 1 {
			return fmt.Errorf("%s: reconciliations %q", p.name, v)
		}
		if v := metric(t, p.metrics, `chronik_operator_reconciliation_duration_seconds_count{controller="chronikuser"}`); v == "" || v == "0" {
			return fmt.Errorf("%s: duration count %q", p.name, v)
		}
		return nil
	})
}

func TestCRDGenPrintsCommittedCRDs(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"crd-gen"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), chronikoperator.CRDs()) || bytes.Count(out.Bytes(), []byte("kind: CustomResourceDefinition")) != 5 {
		t.Fatalf("crd-gen printed %d bytes, %d CRDs", out.Len(), bytes.Count(out.Bytes(), []byte("kind: CustomResourceDefinition")))
	}
	if err := run([]string{"bogus"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), `unknown command "bogus"`) {
		t.Fatalf("bogus command: %v", err)
	}
	if err := run([]string{"start", "--log-level", "loud"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("bad log level: %v", err)
	}
}

// controlPlane starts kube-apiserver and etcd with the CRDs installed.
func controlPlane(t *testing.T) (*envtest.Environment, client.Client) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		cmd := exec.Command(filepath.Join("..", "hack", "kube-tools.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hack/kube-tools.sh: %v", err)
		}
		assets = strings.TrimSpace(string(out))
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
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
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := chronikv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return env, k8s
}

func httpOK(url string) error {
	resp, err := http.Get("http://" + url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// metric returns one sample's value from a /metrics page ("" when absent).
func metric(t *testing.T, addr, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return v
		}
	}
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
