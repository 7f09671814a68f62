package broker_test

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// The group APIs message by message, with the error code Kafka gives for
// each illegal step. Requests are raw kmsg requests (kgo routes group
// requests to the coordinator it finds with FindCoordinator).

func fastGroupBroker(t *testing.T) *testbroker.Broker {
	cfg := testbroker.Config(t.TempDir())
	cfg.GroupInitialRebalanceMs = 0
	cfg.OffsetsTopicPartitions = 4
	return testbroker.Start(t, cfg)
}

func joinReq(group, member string, instance *string) *kmsg.JoinGroupRequest {
	r := kmsg.NewPtrJoinGroupRequest()
	r.Group, r.MemberID, r.InstanceID, r.ProtocolType = group, member, instance, "consumer"
	r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 10000, 10000
	meta := kmsg.ConsumerMemberMetadata{Version: 0, Topics: []string{"gt"}}
	r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta.AppendTo(nil)}}
	return r
}

func code(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var wantCode int16
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: error %v (%d), want %v (%d)", what, kerr.ErrorForCode(got), got, want, wantCode)
	}
}

func TestFindCoordinatorSingleAndBatched(t *testing.T) {
	b := fastGroupBroker(t)
	_, port, _ := net.SplitHostPort(b.Addr)
	c := dial(t, b.Addr)
	// v3: one key.
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = "g1"
	c.send(t, req, 3)
	_, body, err := c.recv(t)
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrFindCoordinatorResponse()
	resp.Version = 3
	if err := resp.ReadFrom(body[1:]); err != nil { // flexible: header tags
		t.Fatal(err)
	}
	code(t, "FindCoordinator v3", resp.ErrorCode, nil)
	if resp.NodeID != 1 || strconv.Itoa(int(resp.Port)) != port {
		t.Fatalf("coordinator %d at %s:%d, want node 1 on port %s", resp.NodeID, resp.Host, resp.Port, port)
	}
	// v4+: batched keys, each with its own error.
	breq := kmsg.NewPtrFindCoordinatorRequest()
	breq.CoordinatorKeys = []string{"a", "b", ""}
	c.send(t, breq, 4)
	_, body, err = c.recv(t)
	if err != nil {
		t.Fatal(err)
	}
	bresp := kmsg.NewPtrFindCoordinatorResponse()
	bresp.Version = 4
	if err := bresp.ReadFrom(body[1:]); err != nil {
		t.Fatal(err)
	}
	if len(bresp.Coordinators) != 3 {
		t.Fatalf("%d coordinators for 3 keys", len(bresp.Coordinators))
	}
	for i, want := range []*kerr.Error{nil, nil, kerr.InvalidRequest} {
		co := bresp.Coordinators[i]
		code(t, "key "+co.Key, co.ErrorCode, want)
		if want == nil && co.NodeID != 1 {
			t.Fatalf("key %s: node %d", co.Key, co.NodeID)
		}
	}
	// Transactions are not served: a clear refusal, not a retry loop.
	treq := kmsg.NewPtrFindCoordinatorRequest()
	treq.CoordinatorType, treq.CoordinatorKeys = 1, []string{"txn"}
	c.send(t, treq, 4)
	_, body, _ = c.recv(t)
	tresp := kmsg.NewPtrFindCoordinatorResponse()
	tresp.Version = 4
	if err := tresp.ReadFrom(body[1:]); err != nil {
		t.Fatal(err)
	}
	code(t, "transaction coordinator", tresp.Coordinators[0].ErrorCode, kerr.InvalidRequest)
	// The offsets topic now exists, is internal and protected.
	cl := client(t, b.Addr)
	adm := kadm.NewClient(cl)
	md, err := adm.Metadata(ctxT(t), "__consumer_offsets")
	if err != nil || !md.Topics["__consumer_offsets"].IsInternal || len(md.Topics["__consumer_offsets"].Partitions) != 4 {
		t.Fatalf("offsets topic metadata: %v %+v", err, md.Topics["__consumer_offsets"])
	}
	res := cl.ProduceSync(ctxT(t), &kgo.Record{Topic: "__consumer_offsets", Value: []byte("x")})
	if err := res.FirstErr(); !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("produce to the offsets topic: %v, want INVALID_TOPIC_EXCEPTION", err)
	}
	dr, err := adm.DeleteTopics(ctxT(t), "__consumer_offsets")
	if err != nil || !errors.Is(dr["__consumer_offsets"].Err, kerr.InvalidTopicException) {
		t.Fatalf("delete the offsets topic: %v %v", err, dr["__consumer_offsets"].Err)
	}
}

func TestClassicGroupErrorCodes(t *testing.T) {
	b := fastGroupBroker(t)
	cl := client(t, b.Addr)
	adm := kadm.NewClient(cl)
	createTopic(t, adm, "gt", 3, nil)
	ctx := ctxT(t)
	const g = "errs"

	// KIP-394: a new member gets its id with MEMBER_ID_REQUIRED.
	j, err := joinReq(g, "", nil).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	code(t, "first join", j.ErrorCode, kerr.MemberIDRequired)
	id := j.MemberID
	if id == "" || j.Generation != -1 {
		t.Fatalf("MEMBER_ID_REQUIRED gave id %q generation %d", id, j.Generation)
	}
	j, err = joinReq(g, id, nil).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	code(t, "join with the id", j.ErrorCode, nil)
	if j.Generation != 1 || j.LeaderID != id || len(j.Members) != 1 || j.Protocol == nil || *j.Protocol != "range" {
		t.Fatalf("join: %+v", j)
	}
	// An unknown member id.
	j2, _ := joinReq(g, "nobody", nil).RequestWith(ctx, cl)
	code(t, "join with an unknown member id", j2.ErrorCode, kerr.UnknownMemberID)

	hb := func(member string, gen int32, inst *string) int16 {
		r := kmsg.NewPtrHeartbeatRequest()
		r.Group, r.MemberID, r.Generation, r.InstanceID = g, member, gen, inst
		resp, err := r.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.ErrorCode
	}
	sync := func(member string, gen int32, assign []kmsg.SyncGroupRequestGroupAssignment) *kmsg.SyncGroupResponse {
		r := kmsg.NewPtrSyncGroupRequest()
		r.Group, r.MemberID, r.Generation, r.GroupAssignment = g, member, gen, assign
		resp, err := r.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	code(t, "sync with a wrong generation", sync(id, 7, nil).ErrorCode, kerr.IllegalGeneration)
	assignment := []byte("opaque-assignment")
	s := sync(id, 1, []kmsg.SyncGroupRequestGroupAssignment{{MemberID: id, MemberAssignment: assignment}})
	code(t, "leader sync", s.ErrorCode, nil)
	if string(s.MemberAssignment) != string(assignment) {
		t.Fatalf("assignment came back as %q: it must pass through untouched", s.MemberAssignment)
	}
	code(t, "heartbeat", hb(id, 1, nil), nil)
	code(t, "heartbeat with a wrong generation", hb(id, 2, nil), kerr.IllegalGeneration)
	code(t, "heartbeat of an unknown member", hb("nobody", 1, nil), kerr.UnknownMemberID)

	// Offsets: the member commits; an unknown partition is refused.
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.MemberID, oc.Generation = g, id, 1
	meta := "m"
	// kgo speaks v10, which names topics by id.
	gtID := topicID(t, adm, "gt")
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "gt", TopicID: gtID, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 42, LeaderEpoch: 3, Metadata: &meta}, {Partition: 9, Offset: 1}}},
		{Topic: "missing", TopicID: [16]byte{9}, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	ocr, err := oc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	code(t, "commit", ocr.Topics[0].Partitions[0].ErrorCode, nil)
	code(t, "commit to a partition that does not exist", ocr.Topics[0].Partitions[1].ErrorCode, kerr.UnknownTopicOrPartition)
	code(t, "commit to a topic id that does not exist", ocr.Topics[1].Partitions[0].ErrorCode, kerr.UnknownTopicID)
	// Before v10, topics go by name.
	cl9 := client(t, b.Addr, kgo.MaxVersions(kversion.V3_7_0()))
	oc9 := kmsg.NewPtrOffsetCommitRequest()
	oc9.Group, oc9.MemberID, oc9.Generation = g, id, 1
	oc9.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "missing", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	if ocr9, err := oc9.RequestWith(ctx, cl9); err != nil || ocr9.Version != 9 {
		t.Fatalf("v9 commit: %v (version %d)", err, ocr9.Version)
	} else {
		code(t, "v9 commit to a topic that does not exist", ocr9.Topics[0].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	}
	oc.Generation = 5
	oc.Topics = oc.Topics[:1]
	ocr, _ = oc.RequestWith(ctx, cl)
	code(t, "commit with a stale generation", ocr.Topics[0].Partitions[0].ErrorCode, kerr.IllegalGeneration)

	// OffsetFetch v8+: several groups at once.
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: g, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "gt", TopicID: gtID, Partitions: []int32{0, 1}}}}, {Group: "other"}}
	ofr, err := of.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(ofr.Groups) != 2 {
		t.Fatalf("%d groups answered", len(ofr.Groups))
	}
	p0, p1 := ofr.Groups[0].Topics[0].Partitions[0], ofr.Groups[0].Topics[0].Partitions[1]
	if p0.Offset != 42 || p0.LeaderEpoch != 3 || p0.Metadata == nil || *p0.Metadata != "m" || p1.Offset != -1 || p1.LeaderEpoch != -1 {
		t.Fatalf("fetched offsets %+v %+v", p0, p1)
	}
	if ofr.Groups[1].ErrorCode != 0 || len(ofr.Groups[1].Topics) != 0 {
		t.Fatalf("a group without offsets: %+v", ofr.Groups[1])
	}

	// OffsetDelete refuses a topic the group consumes.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = g
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "gt", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	odr, err := od.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	code(t, "offset delete of a subscribed topic", odr.Topics[0].Partitions[0].ErrorCode, kerr.GroupSubscribedToTopic)

	// Describe and list.
	dg, err := adm.DescribeGroups(ctx, g)
	if err != nil || dg[g].State != "Stable" || len(dg[g].Members) != 1 || dg[g].Protocol != "range" {
		t.Fatalf("describe: %v %+v", err, dg[g])
	}
	lr := kmsg.NewPtrListGroupsRequest()
	lr.StatesFilter = []string{"stable"}
	lresp, err := lr.RequestWith(ctx, cl)
	if err != nil || len(lresp.Groups) != 1 || lresp.Groups[0].Group != g || lresp.Groups[0].GroupState != "Stable" {
		t.Fatalf("list stable groups: %v %+v", err, lresp)
	}
	lr.StatesFilter = []string{"Empty"}
	if lresp, _ := lr.RequestWith(ctx, cl); len(lresp.Groups) != 0 {
		t.Fatalf("list empty groups: %+v", lresp.Groups)
	}

	// DeleteGroups refuses a group with members.
	del := func() int16 {
		r := kmsg.NewPtrDeleteGroupsRequest()
		r.Groups = []string{g}
		resp, err := r.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Groups[0].ErrorCode
	}
	code(t, "delete a group with members", del(), kerr.NonEmptyGroup)

	// Static membership: a second incarnation fences the first. The static
	// member's join waits for the rebalance it starts, so it goes on a
	// connection of its own.
	inst := "pod-0"
	other := client(t, b.Addr)
	sjc := make(chan *kmsg.JoinGroupResponse, 1)
	go func() {
		r, _ := joinReq(g, "", &inst).RequestWith(ctx, other)
		sjc <- r
	}()
	for dg, _ := adm.DescribeGroups(ctx, g); dg[g].State != "PreparingRebalance"; dg, _ = adm.DescribeGroups(ctx, g) {
		time.Sleep(20 * time.Millisecond)
	}
	lj, _ := joinReq(g, id, nil).RequestWith(ctx, cl)
	code(t, "leader rejoin", lj.ErrorCode, nil)
	sj := <-sjc
	code(t, "static join", sj.ErrorCode, nil)
	sid := sj.MemberID
	if lj.Generation != 2 || sj.Generation != 2 || len(lj.Members) != 2 {
		t.Fatalf("rebalance: leader %+v, static member %+v", lj, sj)
	}
	code(t, "leader sync", sync(id, 2, []kmsg.SyncGroupRequestGroupAssignment{{MemberID: id, MemberAssignment: []byte("a")}, {MemberID: sid, MemberAssignment: []byte("b")}}).ErrorCode, nil)
	replacement, _ := joinReq(g, "", &inst).RequestWith(ctx, cl)
	code(t, "static replacement", replacement.ErrorCode, nil)
	if replacement.MemberID == sid || replacement.Generation != 2 {
		t.Fatalf("replacement %+v: a new member id in the same generation (no rebalance)", replacement)
	}
	code(t, "heartbeat of the fenced incarnation", hb(sid, 2, &inst), kerr.FencedInstanceID)
	code(t, "heartbeat of the replacement", hb(replacement.MemberID, 2, &inst), nil)
	if r := sync(replacement.MemberID, 2, nil); string(r.MemberAssignment) != "b" {
		t.Fatalf("the replacement's assignment %q, want its predecessor's", r.MemberAssignment)
	}

	// LeaveGroup v3+: a batch with one error per member.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Group = g
	lv.Members = []kmsg.LeaveGroupRequestMember{{MemberID: id}, {MemberID: "nobody"}, {MemberID: sid, InstanceID: &inst}, {MemberID: replacement.MemberID, InstanceID: &inst}}
	lvr, err := lv.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	code(t, "leave", lvr.ErrorCode, nil)
	for i, want := range []*kerr.Error{nil, kerr.UnknownMemberID, kerr.FencedInstanceID, nil} {
		code(t, "leave of member "+lvr.Members[i].MemberID, lvr.Members[i].ErrorCode, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		dg, _ = adm.DescribeGroups(ctx, g)
		if dg[g].State == "Empty" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group state %s after every member left", dg[g].State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Now the offsets of the unsubscribed group can go, then the group.
	odr, _ = od.RequestWith(ctx, cl)
	code(t, "offset delete after the members left", odr.Topics[0].Partitions[0].ErrorCode, nil)
	code(t, "delete the empty group", del(), nil)
	code(t, "delete it again", del(), kerr.GroupIDNotFound)
}
