package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/faultnet"
	"github.com/chronik-go/chronik/internal/powerfs"
)

// BuildBinary builds cmd/chronik of the module that holds the working
// directory into dir and returns the binary's path. The harness runs the
// real binary because faults (kill -9, SIGSTOP) are faults of processes.
func BuildBinary(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list: %w", err)
	}
	bin := filepath.Join(dir, "chronik")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/chronik")
	cmd.Dir = strings.TrimSpace(string(out))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, b)
	}
	return bin, nil
}

// freePort returns a loopback address nobody listens on; a node keeps it
// across restarts so clients and peers find it again.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Node is one broker process, restartable on its data directory and ports.
type Node struct {
	ID                   int
	Dir                  string
	Kafka, Raft, Metrics string
	// Proxy is the node's Raft address as its peers know it: the fault
	// proxy in front of Raft (empty for a standalone node).
	Proxy string
	// Power is the node's power-loss file system (nil unless PowerFS).
	Power *powerfs.FS
	args  []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited and its output is drained
	up      chan struct{} // closed when it logs "serving kafka"
	stopped bool          // SIGSTOPped and not yet continued
	log     []string      // the last lines of its stderr, across restarts
}

const keepLines = 400

// Output returns the last lines the node logged (all its lives).
func (n *Node) Output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.log, "\n")
}

// Pid is the process id of the running process (0 when none).
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	select {
	case <-n.done:
		return 0
	default:
		return n.cmd.Process.Pid
	}
}

// Running reports whether the process is alive (stopped counts as alive).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Cluster is a set of broker processes on loopback: three Raft peers, or
// one standalone broker.
type Cluster struct {
	bin   string
	Nodes []*Node
	// Net is the fault proxy on the node links (nil standalone): every
	// node's peers reach its Raft listener through it. Clients reach every
	// node directly: a partition cuts the node links only, so a client
	// may still talk to an isolated leader, as a client on its side of
	// the partition would (docs/DESIGN.md, fault injection).
	Net    *faultnet.Net
	mounts []string      // file systems to unmount at Close
	powers []*powerfs.FS // power-loss file systems to unmount at Close
	logf   func(format string, args ...any)
}

// ClusterConfig says what to start.
type ClusterConfig struct {
	Binary string // path of the chronik binary
	Dir    string // parent of the nodes' data directories
	Nodes  int    // 1 = standalone (no peers), otherwise Raft peers
	Extra  []string
	// DiskMB, when positive, puts each node's data directory on its own
	// ext4 file system of this size (a loop device), so that a disk can
	// really fill up (F10). Needs root.
	DiskMB int
	// PowerFS, when set, serves each node's data directory through a
	// power-loss file system (internal/powerfs) over nodeN.backing, so a
	// node can lose its unsynced writes (F8). Needs root and /dev/fuse.
	PowerFS bool
	Seed    uint64 // of the power-loss file systems' random choices
	Logf    func(format string, args ...any)
}

// StartCluster starts every node and waits until each serves Kafka. A
// port picked free can be taken by another process before the node binds
// it; the cluster is then started again on new ports (three tries).
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	var err error
	for range 3 {
		var c *Cluster
		if c, err = startCluster(ctx, cfg); err == nil || !strings.Contains(err.Error(), "address already in use") {
			return c, err
		}
		if cfg.Logf != nil {
			cfg.Logf("a port was taken before a node bound it; starting the cluster again on new ports")
		}
		for i := 1; i <= cfg.Nodes; i++ {
			_ = os.RemoveAll(filepath.Join(cfg.Dir, "node"+strconv.Itoa(i)))
		}
	}
	return nil, err
}

func startCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, errors.New("cluster needs at least one node")
	}
	c := &Cluster{bin: cfg.Binary, logf: cfg.Logf}
	if cfg.Nodes > 1 {
		c.Net = faultnet.New(faultnet.ProcIdentifier(c.pids), nil)
	}
	var peers []string
	for i := 1; i <= cfg.Nodes; i++ {
		nd := &Node{ID: i, Dir: filepath.Join(cfg.Dir, "node"+strconv.Itoa(i))}
		for _, p := range []*string{&nd.Kafka, &nd.Raft, &nd.Metrics} {
			a, err := freePort()
			if err != nil {
				return nil, err
			}
			*p = a
		}
		if err := os.MkdirAll(nd.Dir, 0o755); err != nil {
			c.Close()
			return nil, fmt.Errorf("data dir: %w", err)
		}
		disk := nd.Dir
		if cfg.PowerFS {
			disk = nd.Dir + ".backing"
		}
		if cfg.DiskMB > 0 {
			if err := mountExt4(nd.Dir+".img", disk, cfg.DiskMB); err != nil {
				c.Close()
				return nil, err
			}
			c.mounts = append(c.mounts, disk)
		}
		if cfg.PowerFS {
			if err := os.MkdirAll(disk, 0o755); err != nil {
				c.Close()
				return nil, fmt.Errorf("backing dir: %w", err)
			}
			p, err := powerfs.Mount(disk, nd.Dir, cfg.Seed+uint64(i))
			if err != nil {
				c.Close()
				return nil, err
			}
			nd.Power = p
			c.powers = append(c.powers, p)
		}
		c.Nodes = append(c.Nodes, nd)
		peerRaft := nd.Raft
		if c.Net != nil {
			p, err := c.Net.Listen(nd.ID, nd.Raft)
			if err != nil {
				c.Close()
				return nil, err
			}
			nd.Proxy, peerRaft = p, p
		}
		peers = append(peers, nd.Kafka+":"+peerRaft[strings.LastIndex(peerRaft, ":")+1:])
	}
	for _, nd := range c.Nodes {
		nd.args = []string{"server", "--data-dir", nd.Dir, "--bind", nd.Kafka, "--advertise", nd.Kafka, "--metrics-bind", nd.Metrics}
		if cfg.Nodes > 1 {
			nd.args = append(nd.args, "--node-id", strconv.Itoa(nd.ID), "--peers", strings.Join(peers, ","), "--raft-bind", nd.Raft)
		}
		nd.args = append(nd.args, cfg.Extra...)
	}
	for _, nd := range c.Nodes {
		if err := c.start(nd); err != nil {
			c.Close()
			return nil, err
		}
	}
	for _, nd := range c.Nodes {
		if err := c.waitUp(ctx, nd); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) start(nd *Node) error {
	cmd := exec.Command(c.bin, nd.args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("node %d: %w", nd.ID, err)
	}
	// Every life's whole log, beside the data directory, for the
	// examination of a run (Output keeps only the last lines).
	logf, err := os.OpenFile(nd.Dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("node %d log: %w", nd.ID, err)
	}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start node %d: %w", nd.ID, err)
	}
	fmt.Fprintf(logf, "--- node %d started (pid %d)\n", nd.ID, cmd.Process.Pid)
	done, up := make(chan struct{}), make(chan struct{})
	nd.mu.Lock()
	nd.cmd, nd.done, nd.up, nd.stopped = cmd, done, up, false
	nd.log = append(nd.log, fmt.Sprintf("--- node %d started (pid %d)", nd.ID, cmd.Process.Pid))
	nd.mu.Unlock()
	// Owned by the process: ends when its stderr closes, i.e. when it
	// exits; done tells Kill and Close that it has.
	go func() {
		defer close(done)
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			_, _ = logf.WriteString(line + "\n")
			nd.mu.Lock()
			nd.log = append(nd.log, line)
			if len(nd.log) > keepLines {
				nd.log = nd.log[len(nd.log)-keepLines:]
			}
			nd.mu.Unlock()
			if strings.Contains(line, "serving kafka") {
				once.Do(func() { close(up) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	return nil
}

func (c *Cluster) waitUp(ctx context.Context, nd *Node) error {
	nd.mu.Lock()
	up, done := nd.up, nd.done
	nd.mu.Unlock()
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case <-up:
		return nil
	case <-done:
		return fmt.Errorf("node %d exited during start-up:\n%s", nd.ID, nd.Output())
	case <-t.C:
		return fmt.Errorf("node %d not serving after 60 s:\n%s", nd.ID, nd.Output())
	case <-ctx.Done():
		return fmt.Errorf("node %d start: %w", nd.ID, ctx.Err())
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (c *Cluster) Kill(nd *Node) {
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

// Term sends SIGTERM (a clean shutdown: leadership handed away first) and
// waits up to 30 s, then kills.
func (c *Cluster) Term(nd *Node) error {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		c.Kill(nd)
		return fmt.Errorf("node %d did not stop within 30 s of SIGTERM", nd.ID)
	}
}

// Pause sends SIGSTOP; Resume sends SIGCONT.
func (c *Cluster) Pause(nd *Node) { c.signal(nd, syscall.SIGSTOP, true) }

// Resume continues a paused node.
func (c *Cluster) Resume(nd *Node) { c.signal(nd, syscall.SIGCONT, false) }

func (c *Cluster) signal(nd *Node, sig syscall.Signal, stopped bool) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return
	}
	_ = nd.cmd.Process.Signal(sig)
	nd.stopped = stopped
}

// pids maps node ids to the pids of running nodes (for the proxy).
func (c *Cluster) pids() map[int]int {
	m := map[int]int{}
	for _, nd := range c.Nodes {
		if p := nd.Pid(); p != 0 {
			m[nd.ID] = p
		}
	}
	return m
}

// Restart starts a node that is not running again on its data directory.
func (c *Cluster) Restart(ctx context.Context, nd *Node) error {
	if err := c.start(nd); err != nil {
		return err
	}
	return c.waitUp(ctx, nd)
}

// Launch starts a node again without waiting for it to serve (a node cut
// off from its peers waits for a metadata quorum before it serves); WaitUp
// waits for it.
func (c *Cluster) Launch(nd *Node) error { return c.start(nd) }

// WaitUp waits until a launched node serves Kafka.
func (c *Cluster) WaitUp(ctx context.Context, nd *Node) error { return c.waitUp(ctx, nd) }

// others returns every node but nd.
func (c *Cluster) others(nd *Node) []*Node {
	var out []*Node
	for _, x := range c.Nodes {
		if x != nd {
			out = append(out, x)
		}
	}
	return out
}

// Heal removes every link fault, continues every paused node and restarts
// every dead one.
func (c *Cluster) Heal(ctx context.Context) error {
	if c.Net != nil {
		c.Net.Heal()
	}
	for _, nd := range c.Nodes {
		nd.mu.Lock()
		stopped := nd.stopped
		nd.mu.Unlock()
		if stopped {
			c.Resume(nd)
		}
		if !nd.Running() {
			if err := c.start(nd); err != nil {
				return err
			}
		}
	}
	// Launched ones (here or by a fault) may still be starting.
	for _, nd := range c.Nodes {
		if err := c.waitUp(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

// WaitReady polls every node's /readyz until it answers 200 and names no
// offline partition: on a cluster node that means a metadata leader and
// every local replica open and caught up. (A node answers 200 while some
// of its partitions are offline and retrying, e.g. after a full disk was
// freed; a drain then would meet their KAFKA_STORAGE_ERROR.)
func (c *Cluster) WaitReady(ctx context.Context) error {
	for _, nd := range c.Nodes {
		for {
			code, body, err := readyz(ctx, nd)
			if err == nil && code == http.StatusOK {
				var st struct {
					Partitions struct {
						Offline []string `json:"offline"`
					} `json:"partitions"`
				}
				if json.Unmarshal([]byte(body), &st) == nil && len(st.Partitions.Offline) == 0 {
					break
				}
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return fmt.Errorf("node %d not ready (last /readyz %d %s): %w", nd.ID, code, strings.Join(strings.Fields(body), " "), err)
			}
		}
	}
	return nil
}

// Close kills every node and stops the proxy.
func (c *Cluster) Close() {
	for _, nd := range c.Nodes {
		c.Kill(nd)
	}
	if c.Net != nil {
		_ = c.Net.Close()
	}
	for _, p := range c.powers {
		if err := p.Unmount(); err != nil && c.logf != nil {
			c.logf("%v", err)
		}
	}
	c.powers = nil
	for _, m := range c.mounts {
		unmount(m)
	}
	c.mounts = nil
}

// Stop stops every node cleanly (SIGTERM, at most 30 s each, then kill),
// all at once, so that the last ones do not wait for a quorum that left.
func (c *Cluster) Stop() error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, nd := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Term(nd) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Seeds are the Kafka addresses of every node.
func (c *Cluster) Seeds() []string {
	var s []string
	for _, nd := range c.Nodes {
		s = append(s, nd.Kafka)
	}
	return s
}

// Node returns the node with the broker id, or nil.
func (c *Cluster) Node(id int32) *Node {
	for _, nd := range c.Nodes {
		if int32(nd.ID) == id {
			return nd
		}
	}
	return nil
}

// Leader asks the cluster for a partition's leader until one is known.
func (c *Cluster) Leader(ctx context.Context, topic string, partition int32) (*Node, error) {
	if len(c.Nodes) == 1 {
		return c.Nodes[0], nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		md, err := adm.Metadata(qctx, topic)
		cancel()
		if err == nil {
			if p, ok := md.Topics[topic].Partitions[partition]; ok && p.Leader >= 0 && p.Err == nil {
				if nd := c.Node(p.Leader); nd != nil && nd.Running() {
					return nd, nil
				}
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, fmt.Errorf("leader of %s-%d: %w", topic, partition, err)
		}
	}
}

// LeaderAmong asks each node of set for a partition's leader (each node's
// own view, not a client's cached one) until one of them names a leader in
// set, or wait passes (nil, nil).
func (c *Cluster) LeaderAmong(ctx context.Context, topic string, partition int32, set []*Node, wait time.Duration) (*Node, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Seeds()...))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, nd := range set {
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			req := kmsg.NewPtrMetadataRequest()
			t := kmsg.NewMetadataRequestTopic()
			t.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, t)
			resp, err := req.RequestWith(qctx, cl.Broker(nd.ID))
			cancel()
			if err != nil {
				continue
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if rp.Partition != partition || rp.ErrorCode != 0 {
						continue
					}
					for _, x := range set {
						if int32(x.ID) == rp.Leader {
							return x, nil
						}
					}
				}
			}
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
