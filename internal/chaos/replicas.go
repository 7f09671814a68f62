package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/storage"
	"github.com/chronik-go/chronik/internal/wal"
)

// metaLogName is the metadata group's log directory (internal/server).
const metaLogName = "__chronik_metadata-0"

// replicaLog is one node's copy of one Raft group's log.
type replicaLog struct {
	node          int
	log           *storage.Log
	first, commit uint64 // first index held, commit index (clamped to the last)
	last, known   uint64 // last index held, commit index of the hard state
}

// CompareReplicas compares the logs of every Raft group (every partition's
// and the metadata group's) held by more than one node, read from the
// nodes' data directories after a clean stop (W8). For each index every
// replica that holds the entry and knows it committed must have the same
// term, type and bytes: Raft's log matching property, and what a Kafka
// reader of any replica sees below the high watermark. It returns one
// history event per log: ok with the number of indexes compared, or fail
// naming the first divergence. The nodes must not be running.
func CompareReplicas(ctx context.Context, dirs map[int]string) ([]Event, error) {
	p, err := wal.ProfileByName("low")
	if err != nil {
		return nil, fmt.Errorf("committer: %w", err)
	}
	cm, err := wal.New(p)
	if err != nil {
		return nil, fmt.Errorf("committer: %w", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = cm.Run(cctx) }()
	defer func() { cancel(); <-done }()

	held := map[string][]int{} // log name → nodes
	nodes := make([]int, 0, len(dirs))
	for n := range dirs {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		ents, err := os.ReadDir(filepath.Join(dirs[n], "logs"))
		if err != nil {
			return nil, fmt.Errorf("node %d logs: %w", n, err)
		}
		for _, e := range ents {
			if e.IsDir() {
				held[e.Name()] = append(held[e.Name()], n)
			}
		}
	}
	names := make([]string, 0, len(held))
	for name := range held {
		names = append(names, name)
	}
	slices.Sort(names)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var out []Event
	for i, name := range names {
		if len(held[name]) < 2 {
			continue
		}
		topic, part := splitLogName(name)
		opts := storage.Options{Logger: quiet, RetentionAge: -1, RetentionBytes: -1}
		if name != metaLogName {
			opts.Meta = entryMeta
		}
		var reps []replicaLog
		var openErr error
		for _, n := range held[name] {
			l, err := storage.Open(filepath.Join(dirs[n], "logs", name), cm, opts)
			if err != nil {
				openErr = fmt.Errorf("node %d %s: %w", n, name, err)
				break
			}
			rl := replicaLog{node: n, log: l}
			hs, _, err := l.InitialState()
			if err == nil {
				var last uint64
				if rl.first, err = l.FirstIndex(); err == nil {
					last, err = l.LastIndex()
				}
				rl.commit, rl.last, rl.known = min(hs.GetCommit(), last), last, hs.GetCommit()
			}
			reps = append(reps, rl)
			if err != nil {
				openErr = fmt.Errorf("node %d %s: %w", n, name, err)
				break
			}
		}
		ev := Event{Process: 300 + i, F: Replicas, Topic: topic, Partition: part, Value: name}
		inv := ev
		inv.Type = Invoke
		out = append(out, inv)
		if openErr == nil {
			n, div, err := compareLogs(reps)
			switch {
			case err != nil:
				openErr = err
			case div != "":
				ev.Type, ev.Error, ev.Offset = Fail, div, Off(int64(n))
			default:
				ev.Type, ev.Offset = OK, Off(int64(n))
			}
		}
		for _, r := range reps {
			_ = r.log.Close()
		}
		if openErr != nil {
			ev.Type, ev.Error = Info, openErr.Error()
		}
		out = append(out, ev)
	}
	return out, nil
}

func entryMeta(data []byte) (storage.EntryMeta, bool, error) {
	base, count, maxTs, ok, err := records.EntryMeta(data)
	return storage.EntryMeta{BaseOffset: base, Count: count, MaxTimestamp: maxTs}, ok, err
}

// splitLogName reads "topic-N" (internal/server's partition directory).
func splitLogName(name string) (string, int32) {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name, 0
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil {
		return name, 0
	}
	return name[:i], int32(p)
}

// entries reads [a, b) whole: a damaged frame makes the log return the
// entries before it, and an error when asked from the damage on.
func entries(l *storage.Log, a, b uint64) ([]*pb.Entry, error) {
	var out []*pb.Entry
	for a < b {
		es, err := l.Entries(a, b, ^uint64(0))
		if err != nil {
			return out, err
		}
		if len(es) == 0 {
			return out, fmt.Errorf("entries [%d, %d): none returned", a, b)
		}
		out = append(out, es...)
		a += uint64(len(es))
	}
	return out, nil
}

// compareLogs walks the indexes some replica knows committed and compares
// the replicas that hold each of them committed. It returns how many
// indexes were compared between two or more replicas, and the first
// divergence ("" if none). A replica whose log ends below the commit index
// it recorded lost entries it knew committed: that is a divergence too.
// A replica that cannot read a committed entry (damage) is an error: the
// comparison could not be made.
func compareLogs(reps []replicaLog) (int, string, error) {
	for _, r := range reps {
		if r.known > r.last {
			return 0, fmt.Sprintf("node %d's log ends at raft index %d, below the commit index %d it recorded: committed entries lost",
				r.node, r.last, r.known), nil
		}
	}
	var lo, hi uint64 = ^uint64(0), 0
	for _, r := range reps {
		lo = min(lo, r.first)
		hi = max(hi, r.commit)
	}
	compared := 0
	const step = 512
	for from := lo; from <= hi && hi > 0; from += step {
		to := min(from+step, hi+1) // exclusive
		batches := make([][]*pb.Entry, len(reps))
		starts := make([]uint64, len(reps))
		for k, r := range reps {
			a, b := max(from, r.first), min(to, r.commit+1)
			if a >= b {
				continue
			}
			es, err := entries(r.log, a, b)
			if err != nil {
				if errors.Is(err, raft.ErrCompacted) && len(es) == 0 {
					continue
				}
				return compared, "", fmt.Errorf("node %d entries %d-%d: %w", r.node, a, b, err)
			}
			batches[k], starts[k] = es, a
		}
		for i := from; i < to; i++ {
			var ref *pb.Entry
			refNode, holders := 0, 0
			for k, r := range reps {
				es := batches[k]
				if len(es) == 0 || i < starts[k] || i-starts[k] >= uint64(len(es)) {
					continue
				}
				e := es[i-starts[k]]
				holders++
				if ref == nil {
					ref, refNode = e, r.node
					continue
				}
				if e.GetTerm() != ref.GetTerm() || e.GetType() != ref.GetType() || !bytes.Equal(e.GetData(), ref.GetData()) {
					return compared, fmt.Sprintf("nodes %d and %d differ at committed raft index %d: term %d vs %d, %d vs %d bytes",
						refNode, r.node, i, ref.GetTerm(), e.GetTerm(), len(ref.GetData()), len(e.GetData())), nil
				}
			}
			if holders >= 2 {
				compared++
			}
		}
	}
	return compared, "", nil
}
