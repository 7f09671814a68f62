package broker

// ElectLeaders (key 43), versions 0–2.
//
// Preferred elections (type 0; v0 has no type and means preferred) hand a
// partition's leadership to its preferred replica (the first) when that
// replica is in sync: any node takes the request and records it in the
// metadata log, the partition's leader acts on it when it is applied (a
// Raft leadership transfer), and the request waits, within its timeout,
// until the preferred replica leads. Already led by it:
// ELECTION_NOT_NEEDED; preferred replica out of sync (the leader, which
// holds the ISR, does not hand over; this node waits at most 3 s when its
// own copy of the ISR says so): PREFERRED_LEADER_NOT_AVAILABLE. Unclean elections (type 1) never pick an
// out-of-date replica here (only Raft elects leaders): a partition with a
// leader answers ELECTION_NOT_NEEDED, one without
// ELIGIBLE_LEADERS_NOT_AVAILABLE. Null topics means every partition.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleElectLeaders(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.ElectLeadersRequest)
	resp := kmsg.NewPtrElectLeadersResponse()
	resp.SetVersion(h.Version)
	ctx, cancel := requestTimeout(ctx, req.TimeoutMillis)
	defer cancel()
	topics := req.Topics
	if topics == nil {
		for _, t := range b.node.Meta().Topics() {
			rt := kmsg.ElectLeadersRequestTopic{Topic: t.Name}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, p.Index)
			}
			topics = append(topics, rt)
		}
	}
	type pending struct {
		out    *kmsg.ElectLeadersResponseTopicPartition
		topic  string
		pref   int32
		inSync bool // as far as this node knows
	}
	var waits []pending
	for _, rt := range topics {
		resp.Topics = append(resp.Topics, kmsg.ElectLeadersResponseTopic{Topic: rt.Topic})
		out := &resp.Topics[len(resp.Topics)-1]
		out.Partitions = make([]kmsg.ElectLeadersResponseTopicPartition, len(rt.Partitions))
		t, known := b.node.Meta().Topic(rt.Topic)
		for i, idx := range rt.Partitions {
			op := &out.Partitions[i]
			op.Partition = idx
			if !known || idx < 0 || int(idx) >= len(t.Partitions) {
				setElectErr(op, kerr.UnknownTopicOrPartition)
				continue
			}
			mp := t.Partitions[idx]
			leader, _ := b.node.Leader(rt.Topic, idx)
			if req.ElectionType == 1 {
				if leader < 0 {
					setElectErr(op, kerr.EligibleLeadersNotAvailable)
				} else {
					setElectErr(op, kerr.ElectionNotNeeded)
				}
				continue
			}
			pref := mp.Replicas[0]
			if leader == pref {
				setElectErr(op, kerr.ElectionNotNeeded)
				continue
			}
			if leader < 0 {
				setElectErr(op, kerr.PreferredLeaderNotAvailable)
				continue
			}
			// The leader holds the authoritative ISR and decides; this
			// node's copy may lag, so an out-of-sync answer here only
			// shortens the wait.
			isr, ok := b.node.InSync(rt.Topic, idx)
			inSync := !ok || slices.Contains(isr, pref)
			if _, err := b.node.ProposeMeta(ctx, &meta.Command{Op: meta.OpElectPreferred, Topic: rt.Topic, Partition: idx}); err != nil {
				te := metaErr(err)
				op.ErrorCode, op.ErrorMessage = te.code.Code, &te.msg
				continue
			}
			waits = append(waits, pending{op, rt.Topic, pref, inSync})
		}
	}
	for _, w := range waits {
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if !w.inSync {
			wctx, cancel = context.WithTimeout(ctx, outOfSyncElectionWait)
		}
		for {
			if leader, _ := b.node.Leader(w.topic, w.out.Partition); leader == w.pref {
				break
			}
			select {
			case <-wctx.Done():
				if w.inSync {
					setElectErr(w.out, kerr.RequestTimedOut)
				} else {
					setElectErr(w.out, kerr.PreferredLeaderNotAvailable)
				}
			case <-time.After(20 * time.Millisecond):
				continue
			}
			break
		}
		cancel()
	}
	return result{resp: resp}
}

// outOfSyncElectionWait is how long a preferred election waits when this
// node believes the preferred replica is out of sync (its view may lag the
// leader's) before answering PREFERRED_LEADER_NOT_AVAILABLE.
const outOfSyncElectionWait = 3 * time.Second

func setElectErr(op *kmsg.ElectLeadersResponseTopicPartition, e *kerr.Error) {
	op.ErrorCode = e.Code
	msg := e.Description
	op.ErrorMessage = &msg
}
