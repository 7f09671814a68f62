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
)

// AllFaults lists every fault in a fixed order (the seed picks by index).
var AllFaults = []Fault{KillLeader, KillFollower, LeaderChase, Bounce, PauseLeader, PauseFollower}

var faultGroups = map[string][]Fault{
	"f1": {KillLeader, KillFollower, LeaderChase},
	"f2": {Bounce},
	"f3": {PauseLeader, PauseFollower},
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
			return nil, fmt.Errorf("unknown fault %q (known: f1, f2, f3, %v)", name, AllFaults)
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
		case PauseLeader, PauseFollower:
			// Past the election timeout, as a long GC stall would be.
			s.hold = 5*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
		default:
			s.hold = time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
		}
		out = append(out, s)
		total += s.quiet + s.hold
	}
	return out
}

// inject runs one step against the cluster, logging what it did.
func (r *runner) inject(ctx context.Context, s step) error {
	if err := sleep(ctx, s.quiet); err != nil {
		return err
	}
	c := r.cluster
	target := func(leader bool) (*Node, string, error) {
		l, err := c.Leader(ctx, r.topic, s.partition)
		if err != nil {
			return nil, "", err
		}
		if leader || len(c.Nodes) == 1 {
			return l, fmt.Sprintf("node %d (leader of %s-%d)", l.ID, r.topic, s.partition), nil
		}
		var fs []*Node
		for _, nd := range c.Nodes {
			if nd != l {
				fs = append(fs, nd)
			}
		}
		f := fs[s.pick%len(fs)]
		return f, fmt.Sprintf("node %d (follower of %s-%d)", f.ID, r.topic, s.partition), nil
	}
	switch s.fault {
	case KillLeader, KillFollower:
		nd, what, err := target(s.fault == KillLeader)
		if err != nil {
			return err
		}
		r.logf("%s: kill -9 %s, down %v", s.fault, what, s.hold.Round(time.Millisecond))
		c.Kill(nd)
		if err := sleep(ctx, s.hold); err != nil {
			return err
		}
		return r.restart(ctx, nd)
	case LeaderChase:
		for range 3 {
			nd, what, err := target(true)
			if err != nil {
				return err
			}
			r.logf("%s: kill -9 %s, down %v", s.fault, what, s.hold.Round(time.Millisecond))
			c.Kill(nd)
			if err := sleep(ctx, s.hold); err != nil {
				return err
			}
			if err := r.restart(ctx, nd); err != nil {
				return err
			}
		}
		return nil
	case Bounce:
		nd, what, err := target(s.pick%2 == 0)
		if err != nil {
			return err
		}
		r.logf("%s: SIGTERM %s, down %v", s.fault, what, s.hold.Round(time.Millisecond))
		if err := c.Term(nd); err != nil {
			return err
		}
		if err := sleep(ctx, s.hold); err != nil {
			return err
		}
		return r.restart(ctx, nd)
	case PauseLeader, PauseFollower:
		nd, what, err := target(s.fault == PauseLeader)
		if err != nil {
			return err
		}
		r.logf("%s: SIGSTOP %s for %v", s.fault, what, s.hold.Round(time.Millisecond))
		c.Pause(nd)
		if err := sleep(ctx, s.hold); err != nil {
			c.Resume(nd)
			return err
		}
		c.Resume(nd)
		r.logf("%s: SIGCONT node %d", s.fault, nd.ID)
		return nil
	}
	return fmt.Errorf("unknown fault %q", s.fault)
}

func (r *runner) restart(ctx context.Context, nd *Node) error {
	if err := r.cluster.Restart(ctx, nd); err != nil {
		return fmt.Errorf("restart node %d: %w", nd.ID, err)
	}
	r.logf("node %d restarted", nd.ID)
	return nil
}
