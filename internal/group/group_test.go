package group

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// harness drives the state machine with a fake clock and a store that
// keeps records in memory.
type harness struct {
	t   *testing.T
	now time.Time
	s   *Groups
	log []Record
	ids int
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, now: time.Unix(1_700_000_000, 0)}
	h.s = NewGroups(DefaultConfig(), DefaultConsumerConfig(), func(recs []Record, then func(error)) {
		h.log = append(h.log, recs...)
		then(nil)
	}, func(client string) string {
		h.ids++
		return fmt.Sprintf("%s-%02d", client, h.ids)
	})
	return h
}

func (h *harness) advance(d time.Duration) {
	h.now = h.now.Add(d)
	h.s.Tick(h.now)
}

// join sends a JoinGroup and returns a function reporting its result (nil
// while pending).
func (h *harness) join(member string, instance *string, meta string) func() *JoinResult {
	var res *JoinResult
	h.s.Join(JoinRequest{Group: "g", MemberID: member, InstanceID: instance, ClientID: "c", ProtocolType: "consumer",
		Protocols:      []Protocol{{Name: "range", Metadata: []byte(meta)}},
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 30 * time.Second, RequireKnownMemberID: true},
		h.now, func(r JoinResult) { res = &r })
	return func() *JoinResult { return res }
}

// joinNew runs the member-id-required round trip and returns the pending
// join of the new member.
func (h *harness) joinNew(instance *string) (string, func() *JoinResult) {
	h.t.Helper()
	if instance != nil {
		r := h.join("", instance, "m")
		return h.pendingID(r), r
	}
	r := h.join("", nil, "m")()
	if r == nil || r.Err != kerr.MemberIDRequired || r.MemberID == "" {
		h.t.Fatalf("first join: %+v, want MEMBER_ID_REQUIRED with an id", r)
	}
	return r.MemberID, h.join(r.MemberID, nil, "m")
}

func (h *harness) pendingID(r func() *JoinResult) string {
	g, _ := h.s.Get("g")
	for id, m := range g.Members {
		if m.join != nil {
			return id
		}
	}
	if res := r(); res != nil {
		return res.MemberID
	}
	h.t.Fatal("no pending member")
	return ""
}

func (h *harness) sync(member string, gen int32, assign map[string][]byte) func() *SyncResult {
	var res *SyncResult
	h.s.Sync(SyncRequest{Group: "g", Generation: gen, MemberID: member, Assignments: assign}, h.now, func(r SyncResult) { res = &r })
	return func() *SyncResult { return res }
}

func (h *harness) state() State {
	g, _ := h.s.Get("g")
	return g.State
}

func TestRebalanceWithInitialDelayAndSync(t *testing.T) {
	h := newHarness(t)
	a, ja := h.joinNew(nil)
	b, jb := h.joinNew(nil)
	if ja() != nil || jb() != nil || h.state() != PreparingRebalance {
		t.Fatalf("joins must wait for the initial rebalance delay; state %v", h.state())
	}
	h.advance(2 * time.Second)
	c, jc := h.joinNew(nil)
	h.advance(1 * time.Second) // the 3 s delay is over; everyone is in
	for _, r := range []*JoinResult{ja(), jb(), jc()} {
		if r == nil || r.Err != nil || r.Generation != 1 || r.Protocol != "range" || r.Leader != a {
			t.Fatalf("join result %+v (leader should be %s)", r, a)
		}
	}
	if len(ja().Members) != 3 || len(jb().Members) != 0 {
		t.Fatalf("only the leader gets the members: %d, %d", len(ja().Members), len(jb().Members))
	}
	if h.state() != CompletingRebalance {
		t.Fatalf("state %v", h.state())
	}
	sb := h.sync(b, 1, nil)
	if sb() != nil {
		t.Fatal("a follower's sync must wait for the leader's")
	}
	sa := h.sync(a, 1, map[string][]byte{a: []byte("A"), b: []byte("B"), c: []byte("C")})
	if string(sa().Assignment) != "A" || string(sb().Assignment) != "B" || h.state() != Stable {
		t.Fatalf("sync: %+v %+v state %v", sa(), sb(), h.state())
	}
	if sc := h.sync(c, 1, nil)(); string(sc.Assignment) != "C" {
		t.Fatalf("late follower sync: %+v", sc)
	}
	if e := h.s.Heartbeat("g", c, nil, 1, h.now); e != nil {
		t.Fatalf("heartbeat in a stable group: %v", e)
	}
}

func stableGroup(t *testing.T, h *harness, n int) []string {
	t.Helper()
	var ids []string
	var joins []func() *JoinResult
	for range n {
		id, j := h.joinNew(nil)
		ids = append(ids, id)
		joins = append(joins, j)
	}
	h.advance(3 * time.Second)
	g, _ := h.s.Get("g")
	assign := map[string][]byte{}
	for _, id := range ids {
		assign[id] = []byte(id)
	}
	for i, id := range ids {
		if joins[i]() == nil {
			t.Fatal("join not completed")
		}
		if id != g.Leader {
			h.sync(id, g.Generation, nil)
		}
	}
	h.sync(g.Leader, g.Generation, assign)
	if h.state() != Stable {
		t.Fatalf("state %v", h.state())
	}
	return ids
}

func TestLeaveSessionTimeoutAndRebalanceTimeout(t *testing.T) {
	h := newHarness(t)
	ids := stableGroup(t, h, 3)
	errs, gerr := h.s.Leave("g", []LeaveMember{{MemberID: ids[2]}}, h.now)
	if gerr != nil || errs[0] != nil || h.state() != PreparingRebalance {
		t.Fatalf("leave: %v %v state %v", gerr, errs, h.state())
	}
	if e := h.s.Heartbeat("g", ids[0], nil, 1, h.now); e != kerr.RebalanceInProgress {
		t.Fatalf("heartbeat during a rebalance: %v, want REBALANCE_IN_PROGRESS", e)
	}
	if r := h.sync(ids[0], 1, nil)(); r.Err != kerr.RebalanceInProgress {
		t.Fatalf("sync during a rebalance: %+v", r)
	}
	j0 := h.join(ids[0], nil, "m")
	// ids[1] keeps heartbeating (and hears REBALANCE_IN_PROGRESS) but never
	// rejoins: the rebalance timeout (30 s) removes it. A member that also
	// stopped heartbeating would go at its session timeout (10 s), as in Kafka.
	for range 5 {
		h.advance(5 * time.Second)
		if e := h.s.Heartbeat("g", ids[1], nil, 1, h.now); e != kerr.RebalanceInProgress {
			t.Fatalf("heartbeat of the member that does not rejoin: %v", e)
		}
	}
	h.advance(4 * time.Second)
	if j0() != nil {
		t.Fatal("completed before the rebalance timeout")
	}
	h.advance(2 * time.Second)
	if r := j0(); r == nil || r.Generation != 2 || r.Leader != ids[0] || len(r.Members) != 1 {
		t.Fatalf("after the rebalance timeout: %+v", r)
	}
	if e := h.s.Heartbeat("g", ids[1], nil, 1, h.now); e != kerr.UnknownMemberID {
		t.Fatalf("removed member's heartbeat: %v", e)
	}
	h.sync(ids[0], 2, map[string][]byte{ids[0]: []byte("all")})
	// Session timeout: the last member stops heartbeating.
	h.advance(9 * time.Second)
	if h.state() != Stable {
		t.Fatalf("state %v before the session timeout", h.state())
	}
	h.advance(2 * time.Second)
	if h.state() != Empty {
		t.Fatalf("state %v after the session timeout, want Empty", h.state())
	}
	g, _ := h.s.Get("g")
	if g.Generation != 3 {
		t.Fatalf("generation %d after the group emptied", g.Generation)
	}
}

func TestStaticMemberRejoinKeepsAssignmentAndFencesOldID(t *testing.T) {
	h := newHarness(t)
	inst := "pod-1"
	id, j := h.joinNew(&inst)
	h.advance(3 * time.Second)
	if r := j(); r == nil || r.Err != nil {
		t.Fatalf("static join: %+v", r)
	}
	h.sync(id, 1, map[string][]byte{id: []byte("mine")})
	// The process restarts: a join with the same instance id and no member id.
	var res *JoinResult
	h.s.Join(JoinRequest{Group: "g", InstanceID: &inst, ClientID: "c", ProtocolType: "consumer",
		Protocols: []Protocol{{Name: "range", Metadata: []byte("m")}}, SessionTimeout: 10 * time.Second, RebalanceTimeout: 30 * time.Second, RequireKnownMemberID: true},
		h.now, func(r JoinResult) { res = &r })
	if res == nil || res.Err != nil || res.MemberID == id || res.Generation != 1 || h.state() != Stable || !res.SkipAssignment {
		t.Fatalf("static rejoin: %+v state %v (no rebalance, same generation, new member id)", res, h.state())
	}
	if r := h.sync(res.MemberID, 1, nil)(); string(r.Assignment) != "mine" {
		t.Fatalf("assignment after static rejoin: %+v", r)
	}
	if e := h.s.Heartbeat("g", id, nil, 1, h.now); e != kerr.UnknownMemberID {
		t.Fatalf("old member id without its instance id: %v, want UNKNOWN_MEMBER_ID", e)
	}
	if e := h.s.Heartbeat("g", id, &inst, 1, h.now); e != kerr.FencedInstanceID {
		t.Fatalf("old incarnation with the instance id: %v, want FENCED_INSTANCE_ID", e)
	}
	errs, _ := h.s.Leave("g", []LeaveMember{{MemberID: id, InstanceID: &inst}}, h.now)
	if errs[0] != kerr.FencedInstanceID {
		t.Fatalf("leave by the fenced id: %v", errs[0])
	}
}

func TestErrorCodes(t *testing.T) {
	h := newHarness(t)
	bad := func(name string, got, want *kerr.Error) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	var jr JoinResult
	h.s.Join(JoinRequest{Group: "g", ProtocolType: "consumer", Protocols: []Protocol{{Name: "x"}}, SessionTimeout: time.Second}, h.now, func(r JoinResult) { jr = r })
	bad("session timeout below the minimum", jr.Err, kerr.InvalidSessionTimeout)
	h.s.Join(JoinRequest{Group: "", ProtocolType: "consumer", Protocols: []Protocol{{Name: "x"}}, SessionTimeout: 10 * time.Second}, h.now, func(r JoinResult) { jr = r })
	bad("empty group id", jr.Err, kerr.InvalidGroupID)
	h.s.Join(JoinRequest{Group: "g", MemberID: "ghost", ProtocolType: "consumer", Protocols: []Protocol{{Name: "x"}}, SessionTimeout: 10 * time.Second}, h.now, func(r JoinResult) { jr = r })
	bad("unknown member of an unknown group", jr.Err, kerr.UnknownMemberID)
	ids := stableGroup(t, h, 2)
	h.s.Join(JoinRequest{Group: "g", ProtocolType: "consumer", Protocols: []Protocol{{Name: "roundrobin"}}, SessionTimeout: 10 * time.Second}, h.now, func(r JoinResult) { jr = r })
	bad("no common protocol", jr.Err, kerr.InconsistentGroupProtocol)
	bad("heartbeat of another generation", h.s.Heartbeat("g", ids[0], nil, 7, h.now), kerr.IllegalGeneration)
	bad("heartbeat of an unknown member", h.s.Heartbeat("g", "ghost", nil, 1, h.now), kerr.UnknownMemberID)
	bad("sync of another generation", h.sync(ids[0], 9, nil)().Err, kerr.IllegalGeneration)
	known := func(TopicPartition) bool { return true }
	var cerrs []*kerr.Error
	h.s.Commit(CommitRequest{Group: "g", MemberID: ids[0], Generation: 5, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("commit of another generation", cerrs[0], kerr.IllegalGeneration)
	h.s.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("simple commit to a group with members", cerrs[0], kerr.UnknownMemberID)
	h.s.Commit(CommitRequest{Group: "g", MemberID: ids[0], Generation: 1, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1, Metadata: string(make([]byte, 5000))}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("metadata too large", cerrs[0], kerr.OffsetMetadataTooLarge)
	h.s.Commit(CommitRequest{Group: "g", MemberID: ids[0], Generation: 1, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 42}}}}, h.now, func(TopicPartition) bool { return false }, func(e []*kerr.Error) { cerrs = e })
	bad("unknown partition", cerrs[0], kerr.UnknownTopicOrPartition)
	var derr *kerr.Error
	h.s.DeleteGroup("g", func(e *kerr.Error) { derr = e })
	bad("delete a group with members", derr, kerr.NonEmptyGroup)
	h.s.DeleteGroup("nope", func(e *kerr.Error) { derr = e })
	bad("delete an unknown group", derr, kerr.GroupIDNotFound)
	// During CompletingRebalance a commit is refused.
	h.s.Leave("g", []LeaveMember{{MemberID: ids[1]}}, h.now)
	h.join(ids[0], nil, "m")
	if h.state() != CompletingRebalance {
		t.Fatalf("state %v", h.state())
	}
	h.s.Commit(CommitRequest{Group: "g", MemberID: ids[0], Generation: 2, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("commit while completing a rebalance", cerrs[0], kerr.RebalanceInProgress)
}

func TestOffsetsPersistAndLoad(t *testing.T) {
	h := newHarness(t)
	known := func(TopicPartition) bool { return true }
	var errs []*kerr.Error
	h.s.Commit(CommitRequest{Group: "simple", Generation: -1, Offsets: []CommitOffset{
		{TopicPartition{"a", 0}, Offset{Offset: 10, LeaderEpoch: 3, Metadata: "m"}}, {TopicPartition{"a", 1}, Offset{Offset: 20, LeaderEpoch: -1}}}},
		h.now, known, func(e []*kerr.Error) { errs = e })
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("simple commit: %v", errs)
	}
	ids := stableGroup(t, h, 2)
	h.s.Commit(CommitRequest{Group: "g", MemberID: ids[0], Generation: 1, Offsets: []CommitOffset{{TopicPartition{"b", 0}, Offset{Offset: 5, LeaderEpoch: -1}}}}, h.now, known, func([]*kerr.Error) {})
	// A fresh coordinator loading the same records sees the same state.
	h2 := newHarness(t)
	for _, r := range h.log {
		if err := h2.s.Load(r.Key, r.Value, h.now); err != nil {
			t.Fatal(err)
		}
	}
	got := h2.s.Fetch("simple", nil)
	if o := got[TopicPartition{"a", 0}]; o.Offset != 10 || o.LeaderEpoch != 3 || o.Metadata != "m" || len(got) != 2 {
		t.Fatalf("loaded offsets %+v", got)
	}
	g, _ := h2.s.Get("g")
	if g.State != Stable || g.Generation != 1 || len(g.Members) != 2 || string(g.Members[ids[1]].Assignment) != ids[1] {
		t.Fatalf("loaded group: state %v gen %d members %d", g.State, g.Generation, len(g.Members))
	}
	// Offsets of a group that stayed empty expire.
	h.s.Leave("g", []LeaveMember{{MemberID: ids[0]}, {MemberID: ids[1]}}, h.now)
	h.advance(time.Second)
	h.now = h.now.Add(8 * 24 * time.Hour)
	h.s.ExpireOffsets(h.now)
	if _, ok := h.s.Get("g"); ok {
		t.Fatal("group g still there after offsets.retention.minutes")
	}
	if _, ok := h.s.Get("simple"); ok {
		t.Fatal("simple group's offsets did not expire")
	}
}

func TestOffsetDeleteRefusesSubscribedTopics(t *testing.T) {
	h := newHarness(t)
	// A consumer subscription: version 0, topics ["t"].
	sub := []byte{0, 0, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 0}
	id, j := h.joinNew(nil)
	_ = id
	h.advance(3 * time.Second)
	g, _ := h.s.Get("g")
	g.Members[j().MemberID].Protocols[0].Metadata = sub
	var errs []*kerr.Error
	h.s.DeleteOffsets("g", []TopicPartition{{"t", 0}, {"other", 0}}, func(e []*kerr.Error, gerr *kerr.Error) { errs = e })
	if errs[0] != kerr.GroupSubscribedToTopic || errs[1] != nil {
		t.Fatalf("offset delete: %v", errs)
	}
}

// topicsFixture is a fixed topic list for KIP-848 tests.
type topicsFixture map[string]int32

func (f topicsFixture) Topic(n string) (TopicInfo, bool) {
	p, ok := f[n]
	return TopicInfo{Partitions: p}, ok
}

func (f topicsFixture) Names() []string {
	var out []string
	for n := range f {
		out = append(out, n)
	}
	return out
}

func (h *harness) hb(req HeartbeatRequest, topics Topics) HeartbeatResult {
	h.t.Helper()
	var res *HeartbeatResult
	req.Group, req.Version = "cg", 1
	h.s.ConsumerHeartbeat(req, topics, h.now, func(r HeartbeatResult) { res = &r })
	if res == nil {
		h.t.Fatal("no heartbeat reply")
	}
	return *res
}

func TestConsumerGroupRevokesBeforeReassigning(t *testing.T) {
	h := newHarness(t)
	topics := topicsFixture{"t": 4}
	a := h.hb(HeartbeatRequest{MemberID: "A", MemberEpoch: 0, Subscribed: []string{"t"}, RebalanceTimeout: 30 * time.Second}, topics)
	if a.Err != nil || a.MemberEpoch != 1 || len(a.Assignment) != 4 {
		t.Fatalf("first member: %+v", a)
	}
	b := h.hb(HeartbeatRequest{MemberID: "B", MemberEpoch: 0, Subscribed: []string{"t"}, RebalanceTimeout: 30 * time.Second}, topics)
	if b.Err != nil || b.MemberEpoch != 2 || len(b.Assignment) != 0 {
		t.Fatalf("second member must wait for A to revoke: %+v", b)
	}
	// A still owns all four: it is told to keep only two and stays at epoch 1.
	a = h.hb(HeartbeatRequest{MemberID: "A", MemberEpoch: 1, Owned: a.Assignment, OwnedKnown: true}, topics)
	if a.Err != nil || a.MemberEpoch != 1 || len(a.Assignment) != 2 {
		t.Fatalf("A during revocation: %+v", a)
	}
	// B asks again: nothing is free yet.
	if r := h.hb(HeartbeatRequest{MemberID: "B", MemberEpoch: 2, Owned: nil, OwnedKnown: true}, topics); len(r.Assignment) != 0 {
		t.Fatalf("B got partitions A still owns: %+v", r)
	}
	// A confirms by reporting the two it kept: it reaches epoch 2, and B
	// gets the other two on its next heartbeat.
	a = h.hb(HeartbeatRequest{MemberID: "A", MemberEpoch: 1, Owned: a.Assignment, OwnedKnown: true}, topics)
	if a.MemberEpoch != 2 {
		t.Fatalf("A after revoking: %+v", a)
	}
	b = h.hb(HeartbeatRequest{MemberID: "B", MemberEpoch: 2, OwnedKnown: true}, topics)
	if len(b.Assignment) != 2 || len(intersect(b.Assignment, a.Assignment)) != 0 && a.Assignment != nil {
		t.Fatalf("B after A revoked: %+v", b)
	}
	if d, _ := h.s.DescribeConsumer("cg"); d.State != "Stable" || d.Epoch != 2 {
		t.Fatalf("describe: %+v", d)
	}
	// A stale epoch is fenced; leaving frees the partitions.
	if r := h.hb(HeartbeatRequest{MemberID: "B", MemberEpoch: 7}, topics); r.Err != kerr.FencedMemberEpoch {
		t.Fatalf("wrong epoch: %v", r.Err)
	}
	if r := h.hb(HeartbeatRequest{MemberID: "A", MemberEpoch: -1}, topics); r.Err != nil || r.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", r)
	}
	b = h.hb(HeartbeatRequest{MemberID: "B", MemberEpoch: 2, Owned: b.Assignment, OwnedKnown: true}, topics)
	if b.MemberEpoch != 3 || len(b.Assignment) != 4 {
		t.Fatalf("B alone: %+v", b)
	}
	// Session timeout removes a silent member.
	h.advance(46 * time.Second)
	if d, _ := h.s.DescribeConsumer("cg"); d.State != "Empty" {
		t.Fatalf("after the session timeout: %+v", d)
	}
}

// TestPartitionForMatchesKafka checks the group → offsets partition mapping
// against values of Java's String.hashCode (UTF-16, including a surrogate
// pair and the Integer.MIN_VALUE case that Kafka's Utils.abs maps to 0),
// computed independently.
func TestPartitionForMatchesKafka(t *testing.T) {
	for _, c := range []struct {
		group string
		want  int32
	}{{"my-group", 12}, {"console-consumer-12345", 6}, {"g", 3}, {"Ünïcödé-group", 47}, {"😀emoji", 27}, {"polygenelubricants", 0}} {
		if got := PartitionFor(c.group, 50); got != c.want {
			t.Errorf("PartitionFor(%q, 50) = %d, want %d", c.group, got, c.want)
		}
	}
}

// TestEveryIllegalStepGetsKafkasCode walks the rest of the illegal steps of
// both protocols, one per line, each with the code Kafka answers.
func TestEveryIllegalStepGetsKafkasCode(t *testing.T) {
	h := newHarness(t)
	bad := func(name string, got, want *kerr.Error) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	join := func(r JoinRequest) JoinResult {
		t.Helper()
		var res *JoinResult
		r.ClientID, r.SessionTimeout, r.RebalanceTimeout = "c", 10*time.Second, 30*time.Second
		if r.Protocols == nil {
			r.Protocols = []Protocol{{Name: "range", Metadata: []byte("m")}}
		}
		if r.ProtocolType == "" {
			r.ProtocolType = "consumer"
		}
		h.s.Join(r, h.now, func(x JoinResult) { res = &x })
		if res == nil {
			return JoinResult{}
		}
		return *res
	}
	bad("join without protocols", join(JoinRequest{Group: "g", Protocols: []Protocol{}}).Err, kerr.InconsistentGroupProtocol)
	h.s.Join(JoinRequest{Group: "g", ProtocolType: "consumer", Protocols: []Protocol{{Name: "x"}}, SessionTimeout: time.Hour}, h.now, func(r JoinResult) {
		bad("session timeout above the maximum", r.Err, kerr.InvalidSessionTimeout)
	})
	ids := stableGroup(t, h, 2)
	bad("join with another protocol type", join(JoinRequest{Group: "g", ProtocolType: "connect"}).Err, kerr.InconsistentGroupProtocol)
	bad("sync of an unknown member", h.sync("ghost", 1, nil)().Err, kerr.UnknownMemberID)
	inconsistent := "roundrobin"
	var sr SyncResult
	h.s.Sync(SyncRequest{Group: "g", Generation: 1, MemberID: ids[0], Protocol: &inconsistent}, h.now, func(r SyncResult) { sr = r })
	bad("sync naming another protocol (v5)", sr.Err, kerr.InconsistentGroupProtocol)
	inst := "i-1"
	bad("heartbeat with an instance id the member does not hold", h.s.Heartbeat("g", ids[0], &inst, 1, h.now), nil)
	errs, _ := h.s.Leave("g", []LeaveMember{{InstanceID: &inst}}, h.now)
	bad("leave by an unknown instance id", errs[0], kerr.UnknownMemberID)
	_, gerr := h.s.Leave("nope", []LeaveMember{{MemberID: "x"}}, h.now)
	bad("leave of an unknown group", gerr, kerr.UnknownMemberID)
	// A member rejoining starts a rebalance: the others hear
	// REBALANCE_IN_PROGRESS on heartbeat and on sync.
	rj := h.join(ids[1], nil, "changed")
	if rj() != nil || h.state() != PreparingRebalance {
		t.Fatalf("rejoin with new metadata: %+v, state %v", rj(), h.state())
	}
	bad("heartbeat during a rebalance", h.s.Heartbeat("g", ids[0], nil, 1, h.now), kerr.RebalanceInProgress)
	bad("sync during a rebalance", h.sync(ids[0], 1, nil)().Err, kerr.RebalanceInProgress)
	var cerrs []*kerr.Error
	known := func(TopicPartition) bool { return true }
	h.s.Commit(CommitRequest{Group: "g", MemberID: ids[0], Generation: 1, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("commit of the current generation during a rebalance (allowed, as in Kafka)", cerrs[0], nil)
	h.s.Commit(CommitRequest{Group: "", Generation: -1, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("commit without a group id", cerrs[0], kerr.InvalidGroupID)
	h.s.Commit(CommitRequest{Group: "unknown", MemberID: "m", Generation: 3, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("member commit to a group that does not exist", cerrs[0], kerr.IllegalGeneration)
	var derrs []*kerr.Error
	h.s.DeleteOffsets("unknown", []TopicPartition{{"t", 0}}, func(_ []*kerr.Error, e *kerr.Error) { derrs = []*kerr.Error{e} })
	bad("offset delete of an unknown group", derrs[0], kerr.GroupIDNotFound)

	// A classic group and a consumer group cannot take each other's members.
	topics := topicsFixture{"t": 2}
	if r := h.hb(HeartbeatRequest{MemberID: "A", Subscribed: []string{"t"}}, topics); r.Err != nil {
		t.Fatalf("consumer group join: %+v", r)
	}
	bad("classic join to a consumer group", join(JoinRequest{Group: "cg"}).Err, kerr.InconsistentGroupProtocol)
	var hr HeartbeatResult
	h.s.ConsumerHeartbeat(HeartbeatRequest{Version: 1, Group: "g", MemberID: "B", Subscribed: []string{"t"}}, topics, h.now, func(r HeartbeatResult) { hr = r })
	bad("consumer heartbeat to a classic group with members", hr.Err, kerr.InconsistentGroupProtocol)
	// KIP-848 heartbeats.
	bad("unknown member with an epoch", h.hb(HeartbeatRequest{MemberID: "ghost", MemberEpoch: 3}, topics).Err, kerr.UnknownMemberID)
	bad("a stale epoch", h.hb(HeartbeatRequest{MemberID: "A", MemberEpoch: 9}, topics).Err, kerr.FencedMemberEpoch)
	bad("an unknown server assignor", h.hb(HeartbeatRequest{MemberID: "C", Subscribed: []string{"t"}, Assignor: &inconsistent}, topics).Err, kerr.UnsupportedAssignor)
	bad("joining without a subscription", h.hb(HeartbeatRequest{MemberID: "C"}, topics).Err, kerr.InvalidRequest)
	bad("joining while owning partitions", h.hb(HeartbeatRequest{MemberID: "C", Subscribed: []string{"t"}, Owned: []TopicPartition{{"t", 0}}}, topics).Err, kerr.InvalidRequest)
	bad("an epoch below -2", h.hb(HeartbeatRequest{MemberID: "A", MemberEpoch: -3}, topics).Err, kerr.InvalidRequest)
	badRegex := "("
	bad("an invalid regex", h.hb(HeartbeatRequest{MemberID: "D", Subscribed: []string{}, Regex: &badRegex}, topics).Err, kerr.InvalidRegularExpression)
	var v1 HeartbeatResult
	h.s.ConsumerHeartbeat(HeartbeatRequest{Version: 1, Group: "cg", Subscribed: []string{"t"}}, topics, h.now, func(r HeartbeatResult) { v1 = r })
	bad("v1 without a member id", v1.Err, kerr.InvalidRequest)
	pod := "pod"
	if r := h.hb(HeartbeatRequest{MemberID: "S1", InstanceID: &pod, Subscribed: []string{"t"}}, topics); r.Err != nil {
		t.Fatalf("static consumer member: %+v", r)
	}
	bad("an instance id held by a live member", h.hb(HeartbeatRequest{MemberID: "S2", InstanceID: &pod, Subscribed: []string{"t"}}, topics).Err, kerr.UnreleasedInstanceID)
	a := h.hb(HeartbeatRequest{MemberID: "A", MemberEpoch: 1, OwnedKnown: true}, topics)
	h.s.Commit(CommitRequest{Group: "cg", MemberID: "A", Generation: a.MemberEpoch + 1, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("consumer commit with a future epoch", cerrs[0], kerr.StaleMemberEpoch)
	h.s.Commit(CommitRequest{Group: "cg", MemberID: "ghost", Generation: 1, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("consumer commit by an unknown member", cerrs[0], kerr.UnknownMemberID)
	h.s.Commit(CommitRequest{Group: "cg", Generation: -1, Offsets: []CommitOffset{{TopicPartition{"t", 0}, Offset{Offset: 1}}}}, h.now, known, func(e []*kerr.Error) { cerrs = e })
	bad("simple commit to a consumer group with members", cerrs[0], kerr.UnknownMemberID)
	var derr *kerr.Error
	h.s.DeleteGroup("cg", func(e *kerr.Error) { derr = e })
	bad("delete a consumer group with members", derr, kerr.NonEmptyGroup)
}

// TestGroupMaxSize refuses the member beyond group.max.size.
func TestGroupMaxSize(t *testing.T) {
	h := newHarness(t)
	h.s.cfg.MaxSize = 2
	stableGroup(t, h, 2)
	var jr JoinResult
	h.s.Join(JoinRequest{Group: "g", ClientID: "c", ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}}, SessionTimeout: 10 * time.Second, RequireKnownMemberID: true}, h.now, func(r JoinResult) { jr = r })
	if jr.Err != kerr.GroupMaxSizeReached {
		t.Fatalf("third member of a group of at most 2: %v", jr.Err)
	}
}
