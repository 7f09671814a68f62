package group

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestKnownMemberRejoin pins Kafka's rules for a JoinGroup from a member the
// group already has (GroupCoordinator.handleJoinGroup, existing member):
// in Stable, the leader or a member whose protocol metadata changed starts
// a rebalance, anyone else gets the current generation back; in
// CompletingRebalance, unchanged metadata gets the same answer again and
// changed metadata starts a rebalance. A cooperative client rejoins with
// new metadata whenever its subscription (or what it owns) changes: without
// the rebalance the group would stay on an assignment computed for the old
// subscriptions.
func TestKnownMemberRejoin(t *testing.T) {
	// setup returns a stable group of three and its leader and a follower.
	setup := func(t *testing.T) (h *harness, leader, follower string, gen int32) {
		h = newHarness(t)
		ids := stableGroup(t, h, 3)
		g, _ := h.s.Get("g")
		for _, id := range ids {
			if id != g.Leader {
				follower = id
				break
			}
		}
		return h, g.Leader, follower, g.Generation
	}
	// rejoinAll completes a rebalance: every member other than skip joins
	// with its unchanged metadata "m".
	rejoinAll := func(h *harness, skip string) map[string]func() *JoinResult {
		g, _ := h.s.Get("g")
		out := map[string]func() *JoinResult{}
		for _, id := range g.memberIDs() {
			if id != skip {
				out[id] = h.join(id, nil, "m")
			}
		}
		return out
	}

	t.Run("stable follower with unchanged metadata gets the current generation", func(t *testing.T) {
		h, leader, follower, gen := setup(t)
		r := h.join(follower, nil, "m")()
		if r == nil || r.Err != nil || r.Generation != gen || r.Leader != leader || len(r.Members) != 0 {
			t.Fatalf("rejoin: %+v, want generation %d at once", r, gen)
		}
		if h.state() != Stable {
			t.Fatalf("state %v, want Stable", h.state())
		}
	})

	t.Run("stable follower with a changed subscription starts a rebalance", func(t *testing.T) {
		h, leader, follower, gen := setup(t)
		jf := h.join(follower, nil, "new-subscription")
		if jf() != nil || h.state() != PreparingRebalance {
			t.Fatalf("rejoin answered %+v in state %v; want it to wait in PreparingRebalance", jf(), h.state())
		}
		// The others learn of the rebalance from their heartbeats.
		if e := h.s.Heartbeat("g", leader, nil, gen, h.now); e != kerr.RebalanceInProgress {
			t.Fatalf("leader heartbeat: %v, want REBALANCE_IN_PROGRESS", e)
		}
		joins := rejoinAll(h, follower)
		lr := joins[leader]()
		if lr == nil || lr.Err != nil || lr.Generation != gen+1 {
			t.Fatalf("leader join: %+v, want generation %d", lr, gen+1)
		}
		// The leader computes the next assignment from every member's
		// current metadata: the follower's must be the new one.
		i := slices.IndexFunc(lr.Members, func(m JoinMember) bool { return m.ID == follower })
		if i < 0 || string(lr.Members[i].Metadata) != "new-subscription" {
			t.Fatalf("leader got members %+v; want %s with its new metadata", lr.Members, follower)
		}
		if r := jf(); r == nil || r.Generation != gen+1 {
			t.Fatalf("follower join: %+v", r)
		}
	})

	t.Run("stable leader rejoining starts a rebalance even when unchanged", func(t *testing.T) {
		h, leader, _, gen := setup(t)
		jl := h.join(leader, nil, "m")
		if jl() != nil || h.state() != PreparingRebalance {
			t.Fatalf("leader rejoin answered %+v in state %v", jl(), h.state())
		}
		rejoinAll(h, leader)
		if r := jl(); r == nil || r.Generation != gen+1 || len(r.Members) != 3 {
			t.Fatalf("leader join: %+v", r)
		}
	})

	t.Run("completing follower with unchanged metadata gets the same answer", func(t *testing.T) {
		h, leader, follower, gen := setup(t)
		h.join(leader, nil, "m")
		joins := rejoinAll(h, leader)
		if h.state() != CompletingRebalance {
			t.Fatalf("state %v", h.state())
		}
		first := joins[follower]()
		again := h.join(follower, nil, "m")()
		if first == nil || again == nil || again.Err != nil || again.Generation != gen+1 || again.Leader != first.Leader {
			t.Fatalf("first %+v, again %+v", first, again)
		}
		if h.state() != CompletingRebalance {
			t.Fatalf("state %v, want CompletingRebalance", h.state())
		}
	})

	t.Run("completing follower with a changed subscription restarts the rebalance", func(t *testing.T) {
		h, leader, follower, gen := setup(t)
		h.join(leader, nil, "m")
		rejoinAll(h, leader)
		g, _ := h.s.Get("g")
		var other string
		for _, id := range g.memberIDs() {
			if id != leader && id != follower {
				other = id
			}
		}
		so := h.sync(other, gen+1, nil) // waits for the leader's assignment
		jf := h.join(follower, nil, "new-subscription")
		if h.state() != PreparingRebalance || jf() != nil {
			t.Fatalf("state %v, join %+v; want a new rebalance", h.state(), jf())
		}
		if r := so(); r == nil || r.Err != kerr.RebalanceInProgress {
			t.Fatalf("pending sync: %+v, want REBALANCE_IN_PROGRESS", r)
		}
		joins := rejoinAll(h, follower)
		lr := joins[leader]()
		i := slices.IndexFunc(lr.Members, func(m JoinMember) bool { return m.ID == follower })
		if lr.Generation != gen+2 || i < 0 || string(lr.Members[i].Metadata) != "new-subscription" {
			t.Fatalf("leader join: %+v", lr)
		}
	})

	t.Run("preparing member updates its metadata for the leader", func(t *testing.T) {
		h, leader, follower, _ := setup(t)
		h.join(leader, nil, "m")
		jf := h.join(follower, nil, "first")
		h.join(follower, nil, "second")
		if r := jf(); r == nil || r.Err != kerr.UnknownMemberID {
			t.Fatalf("the replaced join: %+v", r)
		}
		joins := rejoinAll(h, follower)
		lr := joins[leader]()
		i := slices.IndexFunc(lr.Members, func(m JoinMember) bool { return m.ID == follower })
		if i < 0 || string(lr.Members[i].Metadata) != "second" {
			t.Fatalf("leader got %+v", lr.Members)
		}
	})
}

// TestPendingMemberIDDoesNotHoldRebalance: a rebalance waits for member
// ids handed out with MEMBER_ID_REQUIRED (KIP-394) as for members, but one
// whose client never joins with it (librdkafka subscribing again sends a
// second JoinGroup without an id and uses only the newer id) must stop
// counting once it lapses after the session timeout, or when it leaves,
// not hold the group until the rebalance timeout.
func TestPendingMemberIDDoesNotHoldRebalance(t *testing.T) {
	for _, c := range []struct {
		name string
		drop func(h *harness, pending string)
	}{
		{"lapses", func(h *harness, _ string) { h.advance(10 * time.Second) }},
		{"leaves", func(h *harness, pending string) {
			if errs, e := h.s.Leave("g", []LeaveMember{{MemberID: pending}}, h.now); e != nil || errs[0] != nil {
				h.t.Fatalf("leave of the pending id: %v %v", errs, e)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			ids := stableGroup(t, h, 2)
			g, _ := h.s.Get("g")
			gen := g.Generation
			r := h.join("", nil, "m")()
			if r == nil || r.Err != kerr.MemberIDRequired {
				t.Fatalf("join without an id: %+v", r)
			}
			joins := map[string]func() *JoinResult{}
			for _, id := range ids {
				joins[id] = h.join(id, nil, "changed")
			}
			h.advance(time.Second)
			if h.state() != PreparingRebalance || joins[ids[0]]() != nil {
				t.Fatalf("state %v: the rebalance must wait for the pending id first", h.state())
			}
			c.drop(h, r.MemberID)
			for _, id := range ids {
				if jr := joins[id](); jr == nil || jr.Err != nil || jr.Generation != gen+1 {
					t.Fatalf("join of %s after the pending id went: %+v (state %v)", id, jr, h.state())
				}
			}
		})
	}
}

// TestConsumerSubscriptionChange: in a KIP-848 group, a heartbeat whose
// subscription (topic names or regex) differs from the member's bumps the
// group epoch and computes a new target assignment; the same subscription
// sent again does not.
func TestConsumerSubscriptionChange(t *testing.T) {
	topics := topicsFixture{"a": 4, "b": 4}
	// member is a KIP-848 member as its client sees it: the assignment is
	// only in responses that change it.
	type member struct {
		id    string
		epoch int32
		owned []TopicPartition
	}
	beat := func(h *harness, m *member, req HeartbeatRequest) {
		req.MemberID, req.MemberEpoch, req.Owned, req.OwnedKnown = m.id, m.epoch, m.owned, m.epoch > 0
		r := h.hb(req, topics)
		if r.Err != nil {
			h.t.Fatalf("heartbeat of %s: %v", m.id, r.Err)
		}
		m.epoch = r.MemberEpoch
		if r.Assigned {
			m.owned = r.Assignment
		}
	}
	start := func(t *testing.T) (*harness, *member, *member) {
		h := newHarness(t)
		x, y := &member{id: "X"}, &member{id: "Y"}
		beat(h, x, HeartbeatRequest{Subscribed: []string{"a"}, RebalanceTimeout: 30 * time.Second})
		beat(h, y, HeartbeatRequest{Subscribed: []string{"a"}, RebalanceTimeout: 30 * time.Second})
		for range 3 {
			beat(h, x, HeartbeatRequest{})
			beat(h, y, HeartbeatRequest{})
		}
		if len(x.owned) != 2 || len(y.owned) != 2 {
			t.Fatalf("setup: X %+v, Y %+v", x, y)
		}
		return h, x, y
	}
	epoch := func(h *harness) int32 {
		d, _ := h.s.DescribeConsumer("cg")
		return d.Epoch
	}
	for _, c := range []struct {
		name  string
		sub   []string
		regex *string
		bump  bool
		// want is the topics of Y's target once X released what it must.
		want []string
	}{
		{name: "same names", sub: []string{"a"}, want: []string{"a"}},
		{name: "other names", sub: []string{"b"}, bump: true, want: []string{"b"}},
		{name: "more names", sub: []string{"a", "b"}, bump: true, want: []string{"a", "b"}},
		{name: "regex added", sub: []string{"a"}, regex: strp("b"), bump: true, want: []string{"a", "b"}},
		{name: "no topics", sub: []string{}, bump: true, want: nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, x, y := start(t)
			before := epoch(h)
			beat(h, y, HeartbeatRequest{Subscribed: c.sub, Regex: c.regex})
			if got := epoch(h) > before; got != c.bump {
				t.Fatalf("group epoch %d -> %d; bump %v, want %v", before, epoch(h), got, c.bump)
			}
			// Let both members converge.
			for range 4 {
				beat(h, x, HeartbeatRequest{})
				beat(h, y, HeartbeatRequest{})
			}
			var got []string
			for _, tp := range y.owned {
				if !slices.Contains(got, tp.Topic) {
					got = append(got, tp.Topic)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Fatalf("Y owns topics %v (%+v), want %v", got, y.owned, c.want)
			}
			if len(intersect(x.owned, y.owned)) != 0 {
				t.Fatalf("X %+v and Y %+v overlap", x.owned, y.owned)
			}
			// X alone is subscribed to a: it must end up with all of a.
			if n := len(x.owned); !slices.Contains(c.want, "a") && n != 4 {
				t.Fatalf("X owns %+v, want all four partitions of a", x.owned)
			}
		})
	}
}

func strp(s string) *string { return &s }
