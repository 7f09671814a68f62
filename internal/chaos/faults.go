package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Fault is one kind of injected failure (docs/FAULTS, "Faults").
type Fault string

// The faults the harness injects.
const (
	// KillLeader: kill -9 the leader of a partition, wait, restart it (F1).
	KillLeader Fault = "f1-leader"
	// KillFollower: kill -9 a node that does not lead the partition (F1).
	KillFollower Fault = "f1-follower"
	// LeaderChase: kill -9 the leader, restart it, and again on whoever
	// leads next, three times in a row (F1 "leader chase").
	LeaderChase Fault = "f1-chase"
	// Bounce: SIGTERM a node (a clean shutdown), restart it (F2).
	Bounce Fault = "f2-bounce"
	// PauseLeader: SIGSTOP the leader past the election timeout, SIGCONT (F3).
	PauseLeader Fault = "f3-leader"
	// PauseFollower: SIGSTOP a follower, SIGCONT (F3).
	PauseFollower Fault = "f3-follower"
	// IsolateLeader: cut every link of a partition's leader (F4): the
	// other two are a majority without it.
	IsolateLeader Fault = "f4-isolate-leader"
	// IsolateFollower: cut every link of a follower (F4).
	IsolateFollower Fault = "f4-isolate-follower"
	// Bridge: two nodes cannot reach each other, the third reaches both
	// (F4; the leader is the bridge or one of the ends).
	Bridge Fault = "f4-bridge"
	// OneWay: the leader's links cut in one direction only (F4): it cannot
	// send but still receives, or the reverse.
	OneWay Fault = "f4-one-way"
	// PartitionKill: isolate a leader, then kill -9 the new leader of the
	// majority (or the isolated node) and restart it before the heal (F5).
	PartitionKill Fault = "f5-partition-kill"
	// Delay: latency and jitter on every node link (F6).
	Delay Fault = "f6-delay"
	// SlowLink: a bandwidth limit on the links of a leader (F6).
	SlowLink Fault = "f6-slow"
	// Resets: the leader's connections reset (RST) again and again (F6).
	Resets Fault = "f6-reset"
	// Flaky: the leader's links cut and restored every few hundred
	// milliseconds, as bursts of loss (F6).
	Flaky Fault = "f6-flaky"
	// QuorumLoss: two of three nodes unreachable (every link cut) or
	// killed (W4); no acks=all produce may be acknowledged until the heal.
	QuorumLoss Fault = "w4-quorum-loss"
	// DiskFull: the file system of one node's data directory (a small
	// loop-mounted ext4) filled up, then freed (F10).
	DiskFull Fault = "f10-disk-full"
	// PowerLoss: kill -9 a node and undo (or garble) every write its file
	// system had not fsynced, then restart it (F8; W5 on a standalone
	// broker).
	PowerLoss Fault = "f8-power-loss"
	// BitFlip: stop a node, flip bytes of one of its segments of a
	// partition, start it; at the heal a replica left offline is rebuilt
	// by the operator procedure (F9, cluster only: one copy cannot be
	// repaired).
	BitFlip Fault = "f9-bitflip"
)

// Heal is the Fault of the nemesis operation that undoes a fault.
const Heal = "heal"

// AllFaults lists every fault in a fixed order (the seed picks by index).
var AllFaults = []Fault{KillLeader, KillFollower, LeaderChase, Bounce, PauseLeader, PauseFollower,
	IsolateLeader, IsolateFollower, Bridge, OneWay, PartitionKill, Delay, SlowLink, Resets, Flaky, QuorumLoss, DiskFull, PowerLoss, BitFlip}

var faultGroups = map[string][]Fault{
	"f1":  {KillLeader, KillFollower, LeaderChase},
	"f2":  {Bounce},
	"f3":  {PauseLeader, PauseFollower},
	"f4":  {IsolateLeader, IsolateFollower, Bridge, OneWay},
	"f5":  {PartitionKill},
	"f6":  {Delay, SlowLink, Resets, Flaky},
	"w4":  {QuorumLoss},
	"f8":  {PowerLoss},
	"f9":  {BitFlip},
	"f10": {DiskFull},
}

// networked reports whether a fault needs three nodes (the node links, or
// healthy copies to rebuild a damaged one from).
func (f Fault) networked() bool {
	return strings.HasPrefix(string(f), "f4") || strings.HasPrefix(string(f), "f5") ||
		strings.HasPrefix(string(f), "f6") || f == QuorumLoss || f == BitFlip
}

// ParseFaults reads a comma-separated list of faults or groups (f1, f2, f3).
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	for _, name := range strings.Split(s, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if g, ok := faultGroups[name]; ok {
			out = append(out, g...)
			continue
		}
		if !slices.Contains(AllFaults, Fault(name)) {
			return nil, fmt.Errorf("unknown fault %q (known: f1 … f6, f8 … f10, w4, %v)", name, AllFaults)
		}
		out = append(out, Fault(name))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no faults in %q", s)
	}
	return out, nil
}

// FormatFaults is the inverse of ParseFaults, for the replay command.
func FormatFaults(fs []Fault) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}

// step is one scheduled injection: all its random choices are drawn from
// the seed before it runs, so a seed names the same schedule every time.
type step struct {
	quiet     time.Duration // healthy load before the fault
	fault     Fault
	partition int32         // whose leader is the target
	hold      time.Duration // how long a node stays down or paused
	pick      int           // which follower, when there is a choice
}

// schedule draws steps until their total reaches d (at least one).
func schedule(rng *rand.Rand, faults []Fault, partitions int32, d time.Duration) []step {
	var out []step
	var total time.Duration
	for len(out) == 0 || total < d {
		s := step{
			quiet:     time.Second + time.Duration(rng.Int64N(int64(2*time.Second))),
			fault:     faults[rng.IntN(len(faults))],
			partition: rng.Int32N(partitions),
			pick:      rng.IntN(1 << 16),
		}
		switch s.fault {
		case PauseLeader, PauseFollower, IsolateLeader, IsolateFollower, Bridge, OneWay, PartitionKill, Delay, SlowLink, Resets, Flaky, DiskFull:
			// Past the election timeout, as a long GC stall or a
			// partition would be.
			s.hold = 5*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
		case QuorumLoss:
			s.hold = 3*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
		default:
			s.hold = time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
		}
		out = append(out, s)
		total += s.quiet + s.hold
	}
	return out
}

// inject runs one step against the cluster, logging what it did and
// recording it in the history as nemesis operations: the fault (invoked
// when it starts, ok when it is in place) and its heal.
func (r *runner) inject(ctx context.Context, s step) error {
	if err := sleep(ctx, s.quiet); err != nil {
		return err
	}
	if s.fault.networked() && s.fault != BitFlip {
		return r.injectNet(ctx, s)
	}
	c := r.cluster
	switch s.fault {
	case KillLeader, KillFollower:
		nd, what, err := r.target(ctx, s, s.fault == KillLeader)
		if err != nil {
			return err
		}
		if err := r.nemesis(s.fault, fmt.Sprintf("kill -9 %s, down %v", what, s.hold.Round(time.Millisecond)), func() error { c.Kill(nd); return nil }); err != nil {
			return err
		}
		if err := sleep(ctx, s.hold); err != nil {
			return err
		}
		return r.restart(ctx, nd)
	case LeaderChase:
		for range 3 {
			nd, what, err := r.target(ctx, s, true)
			if err != nil {
				return err
			}
			if err := r.nemesis(s.fault, fmt.Sprintf("kill -9 %s, down %v", what, s.hold.Round(time.Millisecond)), func() error { c.Kill(nd); return nil }); err != nil {
				return err
			}
			if err := sleep(ctx, s.hold); err != nil {
				return err
			}
			if err := r.restart(ctx, nd); err != nil {
				return err
			}
		}
		return nil
	case Bounce:
		nd, what, err := r.target(ctx, s, s.pick%2 == 0)
		if err != nil {
			return err
		}
		if err := r.nemesis(s.fault, fmt.Sprintf("SIGTERM %s, down %v", what, s.hold.Round(time.Millisecond)), func() error { return c.Term(nd) }); err != nil {
			return err
		}
		if err := sleep(ctx, s.hold); err != nil {
			return err
		}
		return r.restart(ctx, nd)
	case DiskFull:
		return r.diskFull(ctx, s)
	case PowerLoss:
		return r.powerLoss(ctx, s)
	case BitFlip:
		return r.bitFlip(ctx, s)
	case PauseLeader, PauseFollower:
		nd, what, err := r.target(ctx, s, s.fault == PauseLeader)
		if err != nil {
			return err
		}
		_ = r.nemesis(s.fault, fmt.Sprintf("SIGSTOP %s for %v", what, s.hold.Round(time.Millisecond)), func() error { c.Pause(nd); return nil })
		err = sleep(ctx, s.hold)
		_ = r.nemesis(Heal, fmt.Sprintf("SIGCONT node %d", nd.ID), func() error { c.Resume(nd); return nil })
		return err
	}
	return fmt.Errorf("unknown fault %q", s.fault)
}

// target finds the node a step aims at: the leader of its partition, or
// the follower its pick names.
func (r *runner) target(ctx context.Context, s step, leader bool) (*Node, string, error) {
	c := r.cluster
	l, err := c.Leader(ctx, r.topic, s.partition)
	if err != nil {
		return nil, "", err
	}
	if leader || len(c.Nodes) == 1 {
		return l, fmt.Sprintf("node %d (leader of %s-%d)", l.ID, r.topic, s.partition), nil
	}
	fs := c.others(l)
	f := fs[s.pick%len(fs)]
	return f, fmt.Sprintf("node %d (follower of %s-%d)", f.ID, r.topic, s.partition), nil
}

// nemesis records a fault operation around do and logs it.
func (r *runner) nemesis(f Fault, what string, do func() error) error {
	return r.nemesisOp(string(f), what, do)
}

func (r *runner) nemesisOp(fault, what string, do func() error) error {
	_ = r.hist.Write(Event{Process: NemesisProcess, Type: Invoke, F: Nemesis, Fault: fault, Value: what})
	r.logf("%s: %s", fault, what)
	err := do()
	e := Event{Process: NemesisProcess, Type: OK, F: Nemesis, Fault: fault, Value: what}
	if err != nil {
		e.Type, e.Error = Info, err.Error()
	}
	_ = r.hist.Write(e)
	return err
}

func (r *runner) restart(ctx context.Context, nd *Node) error {
	return r.nemesisOp(Heal, fmt.Sprintf("restart node %d", nd.ID), func() error {
		if err := r.cluster.Restart(ctx, nd); err != nil {
			return fmt.Errorf("restart node %d: %w", nd.ID, err)
		}
		return nil
	})
}
