package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/chronik-go/chronik/internal/faultnet"
)

// ids lists node ids for a partition of the links.
func ids(nodes ...*Node) []int {
	out := make([]int, len(nodes))
	for i, nd := range nodes {
		out[i] = nd.ID
	}
	return out
}

func names(nodes ...*Node) string {
	s := make([]string, len(nodes))
	for i, nd := range nodes {
		s[i] = fmt.Sprint(nd.ID)
	}
	return strings.Join(s, ",")
}

// links returns every directed link between nodes of a and nodes of b.
func links(a, b []*Node) []faultnet.Link {
	var out []faultnet.Link
	for _, x := range a {
		for _, y := range b {
			if x != y {
				out = append(out, faultnet.Link{From: x.ID, To: y.ID})
			}
		}
	}
	return out
}

// injectNet runs the faults of the node links (F4, F5, F6) and quorum loss
// (W4). Every random parameter comes from the step (drawn from the seed).
func (r *runner) injectNet(ctx context.Context, s step) error {
	c := r.cluster
	if c.Net == nil {
		return fmt.Errorf("%s needs the node links of a cluster", s.fault)
	}
	l, err := c.Leader(ctx, r.topic, s.partition)
	if err != nil {
		return err
	}
	others := c.others(l)
	who := fmt.Sprintf("node %d (leader of %s-%d)", l.ID, r.topic, s.partition)
	hold := s.hold.Round(time.Millisecond)
	healNet := func(what string) error {
		return r.nemesisOp(Heal, what, func() error { c.Net.Heal(); return nil })
	}
	held := func() error {
		err := sleep(ctx, s.hold)
		if herr := healNet("heal the links"); err == nil {
			err = herr
		}
		return err
	}
	switch s.fault {
	case IsolateLeader:
		_ = r.nemesis(s.fault, fmt.Sprintf("isolate %s from nodes %s for %v", who, names(others...), hold),
			func() error { c.Net.Partition(ids(l), ids(others...)); return nil })
		return held()
	case IsolateFollower:
		f := others[s.pick%len(others)]
		rest := c.others(f)
		_ = r.nemesis(s.fault, fmt.Sprintf("isolate node %d (follower of %s-%d) from nodes %s for %v", f.ID, r.topic, s.partition, names(rest...), hold),
			func() error { c.Net.Partition(ids(f), ids(rest...)); return nil })
		return held()
	case Bridge:
		bridge, a, b := l, others[0], others[1]
		if s.pick%2 == 1 {
			bridge, a, b = others[(s.pick/2)%2], l, others[1-(s.pick/2)%2]
		}
		_ = r.nemesis(s.fault, fmt.Sprintf("bridge: nodes %d and %d cut apart, node %d reaches both (leader of %s-%d: node %d) for %v",
			a.ID, b.ID, bridge.ID, r.topic, s.partition, l.ID, hold),
			func() error { c.Net.Partition(ids(a), ids(b)); return nil })
		return held()
	case OneWay:
		var ls []faultnet.Link
		what := fmt.Sprintf("%s cannot send to nodes %s (still receives) for %v", who, names(others...), hold)
		if s.pick%2 == 0 {
			ls = links([]*Node{l}, others)
		} else {
			ls = links(others, []*Node{l})
			what = fmt.Sprintf("%s cannot receive from nodes %s (still sends) for %v", who, names(others...), hold)
		}
		_ = r.nemesis(s.fault, what, func() error {
			for _, k := range ls {
				c.Net.SetRule(k, faultnet.Rule{Cut: true})
			}
			return nil
		})
		return held()
	case PartitionKill:
		return r.partitionKill(ctx, s, l, others)
	case Delay:
		d := 20*time.Millisecond + time.Duration(s.pick%130)*time.Millisecond
		rule := faultnet.Rule{Delay: d, Jitter: d / 4}
		_ = r.nemesis(s.fault, fmt.Sprintf("every link: %v for %v", rule, hold), func() error {
			for _, k := range links(c.Nodes, c.Nodes) {
				c.Net.SetRule(k, rule)
			}
			return nil
		})
		return held()
	case SlowLink:
		rule := faultnet.Rule{Rate: int64(32<<10) * int64(1+s.pick%8)}
		_ = r.nemesis(s.fault, fmt.Sprintf("links of %s: %v for %v", who, rule, hold), func() error {
			for _, k := range append(links([]*Node{l}, others), links(others, []*Node{l})...) {
				c.Net.SetRule(k, rule)
			}
			return nil
		})
		return held()
	case Resets:
		every := 300*time.Millisecond + time.Duration(s.pick%400)*time.Millisecond
		n := 0
		_ = r.nemesis(s.fault, fmt.Sprintf("reset the connections of %s every %v for %v", who, every, hold), func() error { return nil })
		end := time.Now().Add(s.hold)
		for time.Now().Before(end) {
			for _, k := range append(links([]*Node{l}, others), links(others, []*Node{l})...) {
				n += c.Net.Reset(k)
			}
			if err := sleep(ctx, every); err != nil {
				return err
			}
		}
		return r.nemesisOp(Heal, fmt.Sprintf("stop resetting (%d connections reset)", n), func() error { return nil })
	case Flaky:
		rng := rand.New(rand.NewPCG(uint64(s.pick), uint64(s.partition)))
		ls := append(links([]*Node{l}, others), links(others, []*Node{l})...)
		_ = r.nemesis(s.fault, fmt.Sprintf("links of %s cut 100-300 ms, up 200-500 ms, for %v", who, hold), func() error { return nil })
		end := time.Now().Add(s.hold)
		for time.Now().Before(end) {
			for _, k := range ls {
				c.Net.SetRule(k, faultnet.Rule{Cut: true})
			}
			err := sleep(ctx, 100*time.Millisecond+time.Duration(rng.IntN(200))*time.Millisecond)
			c.Net.Heal()
			if err == nil {
				err = sleep(ctx, 200*time.Millisecond+time.Duration(rng.IntN(300))*time.Millisecond)
			}
			if err != nil {
				return err
			}
		}
		return healNet("links steady again")
	case QuorumLoss:
		return r.quorumLoss(ctx, s, l, others)
	}
	return fmt.Errorf("unknown fault %q", s.fault)
}

// partitionKill (F5): isolate the leader; once the other two elected a
// new leader, kill -9 it (the majority loses its quorum) and restart it,
// or kill -9 the isolated node and restart it while still cut off; then
// heal.
func (r *runner) partitionKill(ctx context.Context, s step, l *Node, others []*Node) error {
	c := r.cluster
	half := (s.hold / 2).Round(time.Millisecond)
	_ = r.nemesis(s.fault, fmt.Sprintf("isolate node %d (leader of %s-%d) from nodes %s", l.ID, r.topic, s.partition, names(others...)),
		func() error { c.Net.Partition(ids(l), ids(others...)); return nil })
	victim := l
	if s.pick%2 == 0 {
		nl, err := c.LeaderAmong(ctx, r.topic, s.partition, others, 15*time.Second)
		if err != nil {
			return err
		}
		victim = nl
		if nl == nil {
			victim = others[s.pick/2%2]
			r.logf("%s: no new leader among nodes %s within 15 s", s.fault, names(others...))
		}
	}
	if err := r.nemesis(s.fault, fmt.Sprintf("kill -9 node %d while node %d is isolated, down %v", victim.ID, l.ID, half),
		func() error { c.Kill(victim); return nil }); err != nil {
		return err
	}
	if err := sleep(ctx, half); err != nil {
		return err
	}
	// Launched, not awaited: a node cut off from a quorum does not serve
	// until it reaches one (the heal below waits for it).
	if err := r.nemesisOp(Heal, fmt.Sprintf("start node %d again (partition still in place)", victim.ID), func() error { return c.Launch(victim) }); err != nil {
		return err
	}
	if err := sleep(ctx, half); err != nil {
		return err
	}
	return r.nemesisOp(Heal, "heal the links", func() error {
		c.Net.Heal()
		return c.WaitUp(ctx, victim)
	})
}

// quorumLoss (W4): every link cut, or two of the three nodes killed, for
// the hold; then healed. The checker reports any produce invoked after
// this fault was in place and acknowledged before the heal began.
func (r *runner) quorumLoss(ctx context.Context, s step, l *Node, others []*Node) error {
	c := r.cluster
	hold := s.hold.Round(time.Millisecond)
	if s.pick%2 == 0 {
		_ = r.nemesis(s.fault, fmt.Sprintf("every node cut off from every other (leader of %s-%d was node %d) for %v", r.topic, s.partition, l.ID, hold),
			func() error { c.Net.Partition([]int{1}, []int{2}, []int{3}); return nil })
		err := sleep(ctx, s.hold)
		if herr := r.nemesisOp(Heal, "heal the links", func() error { c.Net.Heal(); return nil }); err == nil {
			err = herr
		}
		return err
	}
	f := others[s.pick/2%2]
	_ = r.nemesis(s.fault, fmt.Sprintf("kill -9 node %d (leader of %s-%d) and node %d for %v", l.ID, r.topic, s.partition, f.ID, hold),
		func() error { c.Kill(l); c.Kill(f); return nil })
	if err := sleep(ctx, s.hold); err != nil {
		return err
	}
	return r.nemesisOp(Heal, fmt.Sprintf("restart nodes %d and %d", l.ID, f.ID), func() error {
		if err := c.Launch(l); err != nil {
			return err
		}
		if err := c.Launch(f); err != nil {
			return err
		}
		if err := c.WaitUp(ctx, l); err != nil {
			return err
		}
		return c.WaitUp(ctx, f)
	})
}
