package controller

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chronikv1 "github.com/chronik-go/chronik/operator/api/v1alpha1"
)

// TestClusterConfigBootsBrokers runs three real brokers from the peers
// files the operator generated (pod DNS names mapped onto 127.0.0.1-3),
// and checks what the rolling restart relies on: the brokers form one
// cluster, Metadata reports every partition in sync, a killed broker
// shows up as under-replicated partitions (so no restart proceeds), and
// its return brings them back in sync.
func TestClusterConfigBootsBrokers(t *testing.T) {
	ctx := brokerContext(t)
	kafkaP, raftP, walP, metricsP := int32(freePort(t)), int32(freePort(t)), int32(freePort(t)), int32(freePort(t))
	c := &chronikv1.ChronikCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "live", Namespace: "cluster"},
		Spec: chronikv1.ChronikClusterSpec{
			Listeners: []chronikv1.Listener{{Name: "plain", Port: kafkaP}},
			RaftPort:  raftP, WALPort: walP,
			BrokerSpec: chronikv1.BrokerSpec{MetricsPort: metricsP},
		},
	}
	if err := k8s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	eventually(t, time.Minute, "ConfigMap", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: "cluster", Name: "live-config"}, &cm)
	})
	if len(cm.Data) != 3 {
		t.Fatalf("config files %v", sortedKeys(cm.Data))
	}

	ip := func(i int) string { return fmt.Sprintf("127.0.0.%d", i+1) }
	type node struct {
		dir, conf string
		proc      *brokerProc
	}
	nodes := make([]*node, 3)
	start := func(i int) {
		n := nodes[i]
		// Followers drop out of the ISR after 2 s instead of 30 s.
		n.proc = runBroker(t, n.dir, []string{"CHRONIK_REPLICA_LAG_TIME_MAX_MS=2000"},
			"server", "--config", n.conf, "--data-dir", filepath.Join(n.dir, "data"))
	}
	metricsAddr := func(i int) string { return fmt.Sprintf("%s:%d", ip(i), metricsP) }
	for i := range nodes {
		conf := cm.Data[fmt.Sprintf("live-%d.toml", i)]
		for j := range 3 {
			conf = strings.ReplaceAll(conf, fmt.Sprintf("live-%d.live-headless.cluster.svc.cluster.local", j), ip(j))
		}
		conf = strings.ReplaceAll(conf, "0.0.0.0", ip(i))
		dir := t.TempDir()
		path := filepath.Join(dir, "node.toml")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &node{dir: dir, conf: path}
	}
	// All three at once: none is ready before the metadata group has a quorum.
	for i := range nodes {
		start(i)
	}
	for i, n := range nodes {
		n.proc.waitReady(t, metricsAddr(i))
	}
	bootstrap := []string{fmt.Sprintf("%s:%d", ip(0), kafkaP)}

	adm, err := newAdmin(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if resp, err := adm.CreateTopic(ctx, 6, 3, nil, "events"); err != nil {
		t.Fatalf("create topic: %v %s", err, resp.ErrMessage)
	}
	eventually(t, time.Minute, "every partition in sync", func() error {
		h, err := describeHealth(ctx, bootstrap)
		if err != nil {
			return err
		}
		if fmt.Sprint(h.Brokers) != "[1 2 3]" || h.Controller < 1 || h.Total < 6 || !h.inSync() {
			return fmt.Errorf("health %+v", h)
		}
		return nil
	})

	// kill -9 of node 3: its partitions become under-replicated and a
	// rolling restart would wait.
	nodes[2].proc.stop(syscall.SIGKILL)
	eventually(t, time.Minute, "under-replicated after kill", func() error {
		h, err := describeHealth(ctx, bootstrap)
		if err != nil {
			return err
		}
		if h.UnderReplicated == 0 {
			return fmt.Errorf("health %+v", h)
		}
		step := nextRestart(rollInput{Pods: []rollPod{
			{Ordinal: 0, Name: "live-0", Exists: true, Ready: true},
			{Ordinal: 1, Name: "live-1", Exists: true, Ready: true},
			{Ordinal: 2, Name: "live-2", Exists: true, Ready: true, UpToDate: true},
		}, Health: h})
		if step.Restart != "" || !strings.Contains(step.Wait, "under-replicated") {
			return fmt.Errorf("rolling restart would not wait: %+v", step)
		}
		return nil
	})
	start(2)
	nodes[2].proc.waitReady(t, metricsAddr(2))
	eventually(t, 2*time.Minute, "in sync after restart", func() error {
		h, err := describeHealth(ctx, bootstrap)
		if err != nil {
			return err
		}
		if !h.inSync() || len(h.Brokers) != 3 {
			return fmt.Errorf("health %+v", h)
		}
		return nil
	})
}
