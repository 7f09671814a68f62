// Package cluster runs three real broker processes on loopback and checks
// what a replicated cluster promises under process faults: nothing
// acknowledged is lost or duplicated, leaders fail over, acks=all never
// pretends.
package cluster

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// node is one broker process of the cluster (restartable on the same data
// directory and ports).
type node struct {
	id                   int
	dir                  string
	kafka, raft, metrics string
	args                 []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	log  strings.Builder
	done chan struct{}
	up   chan struct{}
}

type cluster struct {
	t     *testing.T
	nodes []*node
}

// startCluster starts n nodes (flags extra for every node) and waits until
// each serves Kafka.
func startCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	return startClusterWith(t, n, nil, extra...)
}

// startClusterWith is startCluster with flags for each node: perNode(id).
func startClusterWith(t *testing.T, n int, perNode func(id int) []string, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t}
	var peers []string
	for i := 1; i <= n; i++ {
		nd := &node{id: i, dir: t.TempDir(), kafka: testbroker.FreePort(t), raft: testbroker.FreePort(t), metrics: testbroker.FreePort(t)}
		c.nodes = append(c.nodes, nd)
		peers = append(peers, nd.kafka+":"+portOf(nd.raft))
	}
	for _, nd := range c.nodes {
		nd.args = append([]string{"server", "--data-dir", nd.dir, "--node-id", strconv.Itoa(nd.id), "--peers", strings.Join(peers, ","),
			"--bind", nd.kafka, "--advertise", nd.kafka, "--raft-bind", nd.raft, "--metrics-bind", nd.metrics}, extra...)
		if perNode != nil {
			nd.args = append(nd.args, perNode(nd.id)...)
		}
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	for _, nd := range c.nodes {
		c.waitUp(nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.kill(nd)
		}
	})
	return c
}

func portOf(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

func (c *cluster) start(nd *node) {
	c.t.Helper()
	cmd := exec.Command(testbroker.Binary(c.t), nd.args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	nd.mu.Lock()
	nd.cmd, nd.done, nd.up = cmd, make(chan struct{}), make(chan struct{})
	done, up := nd.done, nd.up
	nd.mu.Unlock()
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			nd.mu.Lock()
			nd.log.WriteString(sc.Text() + "\n")
			nd.mu.Unlock()
			if strings.Contains(sc.Text(), "serving kafka") {
				once.Do(func() { close(up) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
}

func (c *cluster) waitUp(nd *node) {
	c.t.Helper()
	nd.mu.Lock()
	up, done := nd.up, nd.done
	nd.mu.Unlock()
	select {
	case <-up:
	case <-done:
		c.t.Fatalf("node %d exited during start-up:\n%s", nd.id, nd.output())
	case <-time.After(60 * time.Second):
		c.t.Fatalf("node %d not serving after 60 s:\n%s", nd.id, nd.output())
	}
}

func (nd *node) output() string {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.log.String()
}

// kill sends SIGKILL and waits for the process to end.
func (c *cluster) kill(nd *node) {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a stopped process must be able to die
	_ = cmd.Process.Kill()
	<-done
}

// restart starts a killed node again on its data directory.
func (c *cluster) restart(nd *node) {
	c.t.Helper()
	c.start(nd)
	c.waitUp(nd)
}

func (c *cluster) signal(nd *node, sig syscall.Signal) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	_ = nd.cmd.Process.Signal(sig)
}

func (c *cluster) seeds() []string {
	var s []string
	for _, nd := range c.nodes {
		s = append(s, nd.kafka)
	}
	return s
}

func (c *cluster) node(id int32) *node {
	for _, nd := range c.nodes {
		if int32(nd.id) == id {
			return nd
		}
	}
	return nil
}

func (c *cluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...)}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// leaderOf asks the cluster for a partition's leader until one is known.
func (c *cluster) leaderOf(topic string, partition int32) int32 {
	c.t.Helper()
	adm := kadm.NewClient(c.client())
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		md, err := adm.Metadata(ctx, topic)
		cancel()
		if err == nil {
			if p, ok := md.Topics[topic].Partitions[partition]; ok && p.Leader >= 0 && p.Err == nil {
				return p.Leader
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("no leader for %s-%d", topic, partition)
	return -1
}

// metric sums the samples of a node's /metrics whose line starts with prefix.
func (nd *node) metric(t *testing.T, prefix string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + nd.metrics + "/metrics")
	if err != nil {
		t.Fatalf("metrics of node %d: %v", nd.id, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func createTopic(t *testing.T, cl *kgo.Client, name string, partitions int32, rf int16, configs map[string]*string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, rf, configs, name)
	if err != nil || r.Err != nil {
		t.Fatalf("create topic %s: %v %v", name, err, r.Err)
	}
}

func str(s string) *string { return &s }

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitReady polls the node's /readyz until it answers 200.
func (nd *node) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + nd.metrics + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d not ready after 60 s: %s", nd.id, body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("node %d readyz: %v", nd.id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
