// Package raftlog drives Raft groups (go.etcd.io/raft/v3) over
// internal/storage logs: one RawNode per group, one goroutine per group
// that owns it, a Transport for messages to other nodes. A single node runs
// single-voter groups through exactly the same code.
//
// The driver persists every Ready's entries and hard state (one durable
// append) before it sends the Ready's messages, so nothing leaves the node
// that acknowledges an entry the node does not have durably. It assigns
// Kafka offsets when it proposes, as leader, and publishes the high
// watermark: the end offset of the last committed entry.
package raftlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/chronik-go/chronik/internal/storage"
)

// ErrNotLeader is returned for proposals to a node that is not the group's
// leader, or that lost leadership before the proposal committed.
var ErrNotLeader = errors.New("raftlog: not the leader")

// ErrTooFewCopies answers a committed proposal whose MinCopies could not be
// reached because the in-sync replicas shrank below it after the append
// (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND).
var ErrTooFewCopies = errors.New("raftlog: fewer in-sync replicas than required after the append")

// ErrStopped is returned once the group stopped.
var ErrStopped = errors.New("raftlog: group stopped")

// Transport carries Raft messages between nodes. Send must not block for
// long: it queues or drops (Raft retransmits).
type Transport interface {
	Send(group uint64, msgs []*pb.Message)
}

// NoPeers is the transport of a single-node cluster: its groups have no
// other voter, so they never produce a message for another node.
type NoPeers struct{}

// Send drops messages; a single-voter group sends none.
func (NoPeers) Send(uint64, []*pb.Message) {}

// StateMachine consumes a group's committed normal entries in order.
// Apply runs on the group's goroutine.
type StateMachine interface {
	Apply(ents []*pb.Entry) error
}

// Restorer is a StateMachine that can take over a leader's state from a
// snapshot (the owner's part of storage.SnapshotData) when this replica
// was too far behind for the leader's log. Without it the state machine
// starts from nothing at the snapshot.
type Restorer interface {
	Restore(index uint64, extra []byte) error
}

// Config configures a Group.
type Config struct {
	// GroupID identifies the group across nodes.
	GroupID uint64
	// NodeID is this node's Raft id (non-zero).
	NodeID uint64
	// Voters are the group's initial voters, used only when the log is new.
	Voters []uint64
	Log    *storage.Log
	// Meta derives Kafka offsets from entry data (nil: none), the same
	// function the log was opened with.
	Meta      storage.MetaFunc
	Transport Transport
	// SM receives committed entries (may be nil).
	SM StateMachine
	// ReplayAll re-applies the whole log at start — after restoring the
	// log's saved snapshot (storage.Options.Snapshots), if it has one — for
	// state machines that keep their state only in memory (the metadata
	// group, a Restorer).
	ReplayAll bool
	// OnLeader runs on the group's goroutine when this node becomes the
	// leader, before it accepts proposals of the new term (the partition
	// layer rebuilds its producer state for Assign there).
	OnLeader func(term uint64) error
	// MaxInflightAppends bounds the appends a group has waiting for
	// durability (default 2): one being fsynced while the next collects
	// proposals. More means more, smaller appends per round.
	MaxInflightAppends int
	// ForwardProposals lets followers forward Proposal.Forward proposals
	// to the leader (the metadata group; never a group with offsets).
	ForwardProposals bool
	// CampaignAtStart makes this node campaign as soon as a new group (no
	// term yet) starts: the partition's preferred replica.
	CampaignAtStart bool
	// OnISRChange runs on the group's goroutine when the leader's in-sync
	// replicas change (prev is nil when it becomes leader); it must not
	// block.
	OnISRChange func(term uint64, prev, isr []uint64)
	// ReplicaLagTicks: a follower whose durable log has not reached the
	// leader's for this many ticks leaves the in-sync replicas (Kafka's
	// replica.lag.time.max.ms, 30 s: 300 ticks of 100 ms by default).
	ReplicaLagTicks int
	// ElectionTicks and HeartbeatTicks are in units of Host ticks.
	ElectionTicks, HeartbeatTicks int
	// Quiesce lets the group stop ticking and heartbeating while idle
	// (docs/DESIGN.md, "Quiescence and node liveness"). It relies on the
	// Host's node liveness: a group with other voters quiesces only when
	// registered with a Host that the transport reports to.
	Quiesce bool
	Logger  *slog.Logger
}

// Proposal is a request to append data as leader. Assign is called on the
// group's goroutine with the next Kafka offset and the leader's term just
// before the data is proposed; it patches data in place and says how many
// offsets the data occupies — or refuses it, or answers it without
// proposing (an idempotent producer's duplicate). Because every Assign of a
// group runs on one goroutine in proposal order, it is where per-partition
// state such as producer sequences is checked.
type Proposal struct {
	Data   []byte
	Assign func(baseOffset int64, term uint64) Assignment
	// Durable completes the proposal when the leader has it durably in its
	// log (Kafka acks=1) instead of when it commits (acks=all).
	Durable bool
	// Forward lets a follower hand the proposal to the leader through Raft
	// (MsgProp); it then completes at once with Forwarded set, and the
	// proposer learns the outcome from its state machine (the metadata
	// group matches commands by id). Not with Assign.
	Forward bool
	// MinCopies, when above a Raft quorum, holds a committed proposal
	// until that many voters (the leader included) have it durably
	// (Kafka's min.insync.replicas with acks=all, decision 14); it fails
	// with ErrTooFewCopies when the in-sync replicas shrink below it first.
	MinCopies int

	done   chan struct{}
	result Result
	index  uint64
	term   uint64
}

// Assignment is what Assign decided.
type Assignment struct {
	// Count is the number of offsets the data occupies.
	Count int64
	// Err refuses the proposal; it is not proposed.
	Err error
	// Skip answers the proposal at once with BaseOffset, without
	// proposing it.
	Skip       bool
	BaseOffset int64
	// Undo reverts what Assign changed, if Raft drops the proposal.
	Undo func()
}

// Result is the outcome of a proposal.
type Result struct {
	BaseOffset int64
	Index      uint64
	// Skipped is true when Assign answered without proposing.
	Skipped bool
	// Forwarded is true when a follower handed the proposal to the leader.
	Forwarded bool
	Err       error
}

// NewProposal prepares a proposal.
func NewProposal(data []byte, assign func(int64, uint64) Assignment, durable bool) *Proposal {
	return &Proposal{Data: data, Assign: assign, Durable: durable, done: make(chan struct{})}
}

// Done is closed when the result is known.
func (p *Proposal) Done() <-chan struct{} { return p.done }

// Result returns the outcome; valid after Done is closed.
func (p *Proposal) Result() Result { return p.result }

func (p *Proposal) finish(r Result) {
	p.result = r
	close(p.done)
}

// Status is a snapshot of a group's state.
type Status struct {
	Leader        uint64
	Term          uint64
	IsLeader      bool
	Commit        uint64
	Applied       uint64
	HighWatermark int64
	// ISR is the in-sync replicas, sorted (on the leader only).
	ISR []uint64
	// Quiesced: the group is idle and neither ticks nor heartbeats.
	Quiesced bool
	// Serving is true on a leader once it applied the no-op entry of its
	// term: only then does its high watermark cover everything any earlier
	// leader committed (a new leader learns the last commit index by
	// committing in its own term), so only then may it answer reads
	// without showing a reader a high watermark below one it already saw.
	Serving bool
}

// Group drives one Raft group. Run owns the RawNode; everything else talks
// to it through channels.
type Group struct {
	cfg   Config
	log   *slog.Logger
	props chan *Proposal
	inbox chan *pb.Message
	// transferc asks the leader to hand leadership to a voter.
	transferc chan uint64
	// readc carries ConfirmLeader requests to Run.
	readc chan *readReq
	tickc chan struct{}
	// peerc says the Host's liveness table changed.
	peerc chan struct{}
	// quiet mirrors runState.quiesced for the Host's ticker.
	quiet atomic.Bool
	host  atomic.Pointer[Host]

	hw      atomic.Int64
	status  atomic.Pointer[Status]
	lag     atomic.Pointer[[]PeerLag]
	hwMu    sync.Mutex
	hwWaitC chan struct{}

	// Completed local appends, queued by committer goroutines and consumed
	// by Run.
	localMu sync.Mutex
	local   []appendDone
	localc  chan struct{}

	stopped chan struct{}
	err     error
}

// appendDone is a completed MsgStorageAppend.
type appendDone struct {
	m    *pb.Message
	last uint64 // last entry index in the append (0 if none)
	err  error
}

const (
	proposalQueue = 4096
	inboxQueue    = 4096
)

// NewGroup validates cfg and prepares a group; Run starts it.
func NewGroup(cfg Config) (*Group, error) {
	if cfg.NodeID == 0 || cfg.Log == nil {
		return nil, errors.New("raftlog: NodeID and Log are required")
	}
	if cfg.Transport == nil {
		cfg.Transport = NoPeers{}
	}
	if cfg.ElectionTicks == 0 {
		cfg.ElectionTicks = 10
	}
	if cfg.ReplicaLagTicks == 0 {
		cfg.ReplicaLagTicks = 300
	}
	if cfg.MaxInflightAppends == 0 {
		cfg.MaxInflightAppends = 2
	}
	if cfg.HeartbeatTicks == 0 {
		cfg.HeartbeatTicks = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Group{
		cfg:       cfg,
		log:       cfg.Logger.With("group", cfg.Log.Name()),
		props:     make(chan *Proposal, proposalQueue),
		inbox:     make(chan *pb.Message, inboxQueue),
		transferc: make(chan uint64, 1),
		readc:     make(chan *readReq, 64),
		tickc:     make(chan struct{}, 1),
		peerc:     make(chan struct{}, 1),
		localc:    make(chan struct{}, 1),
		hwWaitC:   make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	g.status.Store(&Status{})
	return g, nil
}

// ID returns the group id.
func (g *Group) ID() uint64 { return g.cfg.GroupID }

// Log returns the group's log.
func (g *Group) Log() *storage.Log { return g.cfg.Log }

// Propose queues p; it blocks while the queue is full. The result arrives
// through p.Done.
func (g *Group) Propose(ctx context.Context, p *Proposal) error {
	select {
	case g.props <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stopped:
		return ErrStopped
	}
}

// ProposeWait proposes and waits for the result.
func (g *Group) ProposeWait(ctx context.Context, p *Proposal) (Result, error) {
	if err := g.Propose(ctx, p); err != nil {
		return Result{}, err
	}
	select {
	case <-p.Done():
		return p.Result(), p.Result().Err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Step delivers a message from another node; it drops the message when the
// inbox is full (Raft retransmits).
func (g *Group) Step(m *pb.Message) {
	select {
	case g.inbox <- m:
	default:
	}
}

// Tick advances the group's logical clock by one tick.
func (g *Group) Tick() {
	select {
	case g.tickc <- struct{}{}:
	default:
	}
}

// isrCheckTicks is how often (in ticks) a leader re-measures its ISR.
const isrCheckTicks = 3

// TransferLeadership asks the group, if this node leads it, to hand
// leadership to voter to (Raft's leadership transfer: to catches up, then
// campaigns at once). It does not wait; Status shows the outcome. A
// request while another is queued is dropped.
func (g *Group) TransferLeadership(to uint64) {
	select {
	case g.transferc <- to:
	default:
	}
}

// readReq is a ConfirmLeader call waiting in Run.
type readReq struct {
	id    uint64
	index uint64 // the read index, once Raft confirmed it (0 before)
	done  chan error
}

// ConfirmLeader returns once this node has confirmed, by a round of
// heartbeats answered by a quorum (Raft's ReadIndex), that it was the
// leader when it asked, and has applied everything committed by then: a
// high watermark read afterwards is at least every offset any leader
// acknowledged before the call. A leader cut off from the quorum (deposed
// without knowing it yet) never confirms: the call returns ErrNotLeader
// when it steps down, or the context's error.
func (g *Group) ConfirmLeader(ctx context.Context) error {
	r := &readReq{done: make(chan error, 1)}
	select {
	case g.readc <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stopped:
		return ErrStopped
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stopped:
		return ErrStopped
	}
}

// PeerLag is how many entries a voter's durable log is behind the
// leader's (Raft's Match against the leader's own).
type PeerLag struct {
	Node    uint64
	Entries uint64
}

// Lag returns, on a leader, each other voter's lag as last measured with
// the in-sync replicas (every few ticks); nil on a follower.
func (g *Group) Lag() []PeerLag {
	if st := g.status.Load(); st == nil || !st.IsLeader {
		return nil
	}
	if l := g.lag.Load(); l != nil {
		return *l
	}
	return nil
}

// HighWatermark returns the end offset of the last committed entry.
func (g *Group) HighWatermark() int64 { return g.hw.Load() }

// HighWatermarkChanged returns a channel closed at the next change of the
// high watermark (for long-polling readers).
func (g *Group) HighWatermarkChanged() <-chan struct{} {
	g.hwMu.Lock()
	defer g.hwMu.Unlock()
	return g.hwWaitC
}

// Status returns the group's last published state.
func (g *Group) Status() Status { return *g.status.Load() }

// Stopped is closed when Run returned.
func (g *Group) Stopped() <-chan struct{} { return g.stopped }

// Err returns why Run stopped, once Stopped is closed.
func (g *Group) Err() error { return g.err }

func (g *Group) setHW(v int64) {
	if g.hw.Swap(v) == v {
		return
	}
	g.hwMu.Lock()
	close(g.hwWaitC)
	g.hwWaitC = make(chan struct{})
	g.hwMu.Unlock()
}

// runState is owned by Run's goroutine.
type runState struct {
	rn       *raft.RawNode
	leader   bool
	term     uint64
	lead     uint64
	commit   uint64
	applied  uint64
	next     int64                // next Kafka offset to assign, as leader
	proposed []*Proposal          // proposed in this term, index not yet known, in order
	waiting  map[uint64]*Proposal // by index, appended, awaiting commit
	durableq []*Proposal          // acks=1 proposals awaiting their append
	inflight int                  // appends submitted, not yet durable
	// In-sync tracking, as leader: ticks counts Tick calls; caughtUp the
	// tick at which each follower's durable log last reached the leader's.
	ticks      uint64
	caughtUp   map[uint64]uint64
	isr        []uint64
	isrScratch []uint64
	lagScratch []PeerLag
	// Quiescence: quiesced while idle; seen is each node's liveness
	// generation and count of downs as this group last looked
	// (docs/DESIGN.md).
	quiesced bool
	seen     map[uint64]peerSeen
	scratch  []uint64
	// termStart is the index of the no-op entry this node appended when it
	// became leader; it serves reads once it applied it (Status.Serving).
	termStart uint64
	// copiesq holds committed proposals awaiting MinCopies durable copies,
	// by index.
	copiesq []*Proposal
	// reads are ConfirmLeader calls by id: waiting for Raft's read index,
	// then for it to be applied.
	reads  map[uint64]*readReq
	readID uint64
}

// Run drives the group until ctx ends or storage fails. On return every
// pending proposal has been answered.
func (g *Group) Run(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			// etcd raft panics on storage errors it cannot handle.
			err = fmt.Errorf("raftlog: group %s: raft panic: %v", g.cfg.Log.Name(), r)
		}
		g.err = err
		close(g.stopped)
		g.failQueued(err)
	}()
	s, err := g.start()
	if err != nil {
		return err
	}
	defer func() {
		g.failPending(s, err)
		if s.leader && len(s.caughtUp) > 1 {
			// A last heartbeat as the group stops on a node that may stay up
			// (its log failed or was found damaged): quiesced followers wake
			// on it and, hearing nothing more, elect a successor. Node
			// liveness would not wake them, as the node is still up.
			g.heartbeat(s, nil, false)
		}
	}()
	for {
		// Take everything that is ready without blocking, so that one Ready
		// (one durable append) carries as much as possible.
		g.drain(s)
		for s.inflight < g.cfg.MaxInflightAppends && s.rn.HasReady() {
			if err := g.handleReady(ctx, s); err != nil {
				return err
			}
			g.drain(s)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.tickc:
			if s.quiesced || g.maybeQuiesce(s) {
				break // a tick sent just before the group quiesced, or it just did
			}
			s.rn.Tick()
			s.ticks++
			// The ISR is measured in units of the lag (30 s by default):
			// checking every few ticks is plenty.
			if s.leader && len(s.caughtUp) > 1 && s.ticks%isrCheckTicks == 0 && g.trackISR(s) {
				g.publish(s)
			}
		case m := <-g.inbox:
			g.step(s, m)
		case p := <-g.props:
			g.propose(s, p)
		case r := <-g.readc:
			g.startRead(s, r)
		case to := <-g.transferc:
			if s.leader && to != g.cfg.NodeID {
				g.wake(s, "leadership transfer")
				g.log.Info("transferring leadership", "to", to)
				s.rn.TransferLeader(to)
			}
		case <-g.peerc:
			g.peersChanged(s)
		case <-g.localc:
		}
		if err := g.takeLocal(s); err != nil {
			return err
		}
		if len(s.copiesq) > 0 {
			g.checkCopies(s)
		}
		if len(s.reads) > 0 {
			g.finishReads(s)
		}
	}
}

// takeLocal steps the responses of appends that became durable.
func (g *Group) takeLocal(s *runState) error {
	g.localMu.Lock()
	done := g.local
	g.local = nil
	g.localMu.Unlock()
	for _, d := range done {
		s.inflight--
		if d.err != nil {
			return fmt.Errorf("raftlog: append: %w", d.err)
		}
		var remote []*pb.Message
		for _, r := range d.m.GetResponses() {
			if r.GetTo() == g.cfg.NodeID {
				if err := s.rn.Step(r); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
					g.log.Debug("step local response", "err", err)
				}
			} else {
				remote = append(remote, r)
			}
		}
		if len(remote) > 0 {
			g.cfg.Transport.Send(g.cfg.GroupID, remote)
		}
		// acks=1: the leader has the entry durably in its log.
		for len(s.durableq) > 0 && s.durableq[0].index <= d.last {
			p := s.durableq[0]
			s.durableq[0] = nil
			s.durableq = s.durableq[1:]
			if s.waiting[p.index] == p {
				delete(s.waiting, p.index)
				p.finish(p.result)
			}
		}
	}
	return nil
}

func (g *Group) drain(s *runState) {
	for range proposalQueue {
		select {
		case m := <-g.inbox:
			g.step(s, m)
			continue
		case p := <-g.props:
			g.propose(s, p)
			continue
		default:
		}
		return
	}
}

func (g *Group) start() (*runState, error) {
	l := g.cfg.Log
	hs, cs, err := l.InitialState()
	if err != nil {
		return nil, err
	}
	last, _ := l.LastIndex()
	if len(cs.GetVoters()) == 0 && raft.IsEmptyHardState(hs) && last == 0 {
		if len(g.cfg.Voters) == 0 {
			return nil, errors.New("raftlog: new group without voters")
		}
		cs = &pb.ConfState{Voters: slices.Clone(g.cfg.Voters)}
		if err := l.SetConfState(context.Background(), 0, cs); err != nil {
			return nil, fmt.Errorf("bootstrap conf state: %w", err)
		}
	}
	applied := min(l.Applied(), hs.GetCommit())
	if g.cfg.ReplayAll {
		// The state machine starts empty: from the saved snapshot, if the
		// log keeps one, and the entries after it.
		first, _ := l.FirstIndex()
		applied = first - 1
		if idx, data, ok := l.Saved(); ok {
			r, isR := g.cfg.SM.(Restorer)
			if !isR {
				return nil, errors.New("raftlog: a saved snapshot needs a state machine that restores")
			}
			if err := r.Restore(idx, data); err != nil {
				return nil, fmt.Errorf("raftlog: restore saved snapshot at %d: %w", idx, err)
			}
			applied = idx
		} else if applied > 0 {
			return nil, fmt.Errorf("raftlog: the log starts at index %d and no snapshot covers the entries before it", first)
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              g.cfg.NodeID,
		ElectionTick:    g.cfg.ElectionTicks,
		HeartbeatTick:   g.cfg.HeartbeatTicks,
		Storage:         l,
		Applied:         applied,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		CheckQuorum:     true,
		// Appends complete asynchronously (see handleReady).
		AsyncStorageWrites: true,
		PreVote:            true,
		// Kafka clients must talk to the leader; a follower answers
		// NOT_LEADER instead of forwarding.
		// Data groups never let raft forward a proposal: a node that still
		// believes it leads would hand entries with its offsets to the new
		// leader. The metadata group's commands carry no offsets.
		DisableProposalForwarding: !g.cfg.ForwardProposals,
		Logger:                    raftLogger{g.log},
	})
	if err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	hw, err := l.EndOffsetAt(applied)
	if err != nil {
		return nil, fmt.Errorf("raftlog: high watermark at %d: %w", applied, err)
	}
	g.setHW(hw)
	s := &runState{rn: rn, applied: applied, commit: hs.GetCommit(), waiting: map[uint64]*Proposal{}, seen: map[uint64]peerSeen{}}
	if len(cs.GetVoters()) == 1 && cs.GetVoters()[0] == g.cfg.NodeID || g.cfg.CampaignAtStart && hs.GetTerm() == 0 {
		// A single voter needs no election timeout; a new group's
		// preferred replica campaigns at once, so leaders start where
		// placement put them instead of where a timer fired first.
		if err := rn.Campaign(); err != nil {
			return nil, err
		}
	}
	g.publish(s)
	return s, nil
}

// propose assigns offsets and hands p to Raft, or fails it.
func (g *Group) propose(s *runState, p *Proposal) {
	if !s.leader && p.Forward && g.cfg.ForwardProposals && p.Assign == nil && len(p.Data) > 0 {
		if s.lead == raft.None {
			p.finish(Result{Err: fmt.Errorf("%w: no leader known", ErrNotLeader)})
			return
		}
		g.wake(s, "proposal")
		if err := s.rn.Propose(p.Data); err != nil {
			p.finish(Result{Err: fmt.Errorf("%w: %w", ErrNotLeader, err)})
			return
		}
		p.finish(Result{Forwarded: true})
		return
	}
	if !s.leader || s.next < 0 {
		p.finish(Result{Err: ErrNotLeader})
		return
	}
	if len(p.Data) == 0 {
		p.finish(Result{Err: errors.New("raftlog: empty proposal")})
		return
	}
	base := s.next
	var a Assignment
	if p.Assign != nil {
		a = p.Assign(base, s.term)
	}
	switch {
	case a.Err != nil:
		p.finish(Result{Err: a.Err})
		return
	case a.Skip:
		p.finish(Result{BaseOffset: a.BaseOffset, Skipped: true})
		return
	}
	g.wake(s, "proposal")
	if err := s.rn.Propose(p.Data); err != nil {
		if a.Undo != nil {
			a.Undo()
		}
		p.finish(Result{Err: fmt.Errorf("%w: %w", ErrNotLeader, err)})
		return
	}
	s.next += a.Count
	p.result.BaseOffset = base
	p.term = s.term
	s.proposed = append(s.proposed, p)
}

func (g *Group) handleReady(ctx context.Context, s *runState) error {
	rd := s.rn.Ready()
	becameLeader := false
	if rd.SoftState != nil {
		wasLeader, wasLead := s.leader, s.lead
		s.leader = rd.RaftState == raft.StateLeader
		s.lead = rd.Lead
		if s.lead != wasLead || s.leader != wasLeader {
			g.wake(s, "leadership change")
			g.rememberPeers(s)
		}
		becameLeader = s.leader && !wasLeader
		if wasLeader && !s.leader {
			g.log.Info("lost leadership", "lead", rd.Lead)
			g.failPending(s, ErrNotLeader)
			g.failReads(s, ErrNotLeader)
		}
	}
	if rd.HardState != nil {
		s.term = rd.GetTerm()
		s.commit = max(s.commit, rd.GetCommit())
	}
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) == 8 {
			if r, ok := s.reads[binary.BigEndian.Uint64(rs.RequestCtx)]; ok {
				r.index = rs.Index
			}
		}
	}
	// Match our proposals to the indexes Raft gave them: as leader, the
	// non-empty normal entries of our term are our proposals, in order
	// (raft copies the data, so identity cannot be used) — and, where
	// followers forward proposals (the metadata group), theirs too: there
	// an entry is ours only if it holds our proposal's bytes (metadata
	// commands carry a random id). Matching a forwarded entry would answer
	// a proposal with another command's index and outcome.
	for _, e := range rd.Entries {
		if len(s.proposed) == 0 || len(e.Data) == 0 || e.GetType() != pb.EntryNormal || e.GetTerm() != s.proposed[0].term ||
			g.cfg.ForwardProposals && !bytes.Equal(e.Data, s.proposed[0].Data) {
			continue
		}
		{
			p := s.proposed[0]
			s.proposed[0] = nil
			s.proposed = s.proposed[1:]
			p.index = e.GetIndex()
			p.result.Index = p.index
			s.waiting[p.index] = p
			if p.Durable {
				s.durableq = append(s.durableq, p)
			}
		}
	}
	// Asynchronous storage writes: appends go to the committer and their
	// responses (including messages that acknowledge the entries to other
	// nodes) are stepped only once durable, in takeLocal; meanwhile this
	// goroutine goes on proposing, so every group has data in every round.
	var remote []*pb.Message
	for _, m := range rd.Messages {
		switch m.GetTo() {
		case raft.LocalAppendThread:
			if err := g.installSnapshot(s, m.GetSnapshot()); err != nil {
				return err
			}
			if err := g.storageAppend(ctx, m); err != nil {
				return err
			}
			s.inflight++
		case raft.LocalApplyThread:
			if err := g.apply(ctx, s, m.GetEntries()); err != nil {
				return err
			}
			for _, r := range m.GetResponses() {
				if err := s.rn.Step(r); err != nil {
					return fmt.Errorf("raftlog: step apply response: %w", err)
				}
			}
		default:
			if m.GetType() == pb.MsgHeartbeatResp && !s.quiesced && isQuiesceMarker(m.GetContext()) {
				// Declined to quiesce: the answer wakes the leader.
				m.Context = wakeMarker
			}
			remote = append(remote, m)
		}
	}
	if len(remote) > 0 {
		g.cfg.Transport.Send(g.cfg.GroupID, remote)
		// The transport gives no word of delivery: count a snapshot as
		// delivered at once. The follower then probes from after it, and if
		// the snapshot was lost its rejection leads to another one.
		for _, m := range remote {
			if m.GetType() == pb.MsgSnap {
				s.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFinish)
			}
		}
	}
	if becameLeader {
		// Raft appends an empty entry when a node becomes leader; reads wait
		// until it is applied (Status.Serving). Without it in this Ready
		// (never expected) the leader serves at once, as before.
		s.termStart = 0
		for _, e := range rd.Entries {
			if e.GetTerm() == s.term && len(e.Data) == 0 && e.GetType() == pb.EntryNormal {
				s.termStart = e.GetIndex()
				break
			}
		}
		// A new leader gives every voter a full lag period to show it is
		// caught up (Kafka's new leader starts from the ISR it was given).
		s.caughtUp = map[uint64]uint64{}
		for id := range s.rn.Status().Progress {
			s.caughtUp[id] = s.ticks
		}
		g.trackISR(s)
		// Everything in the log up to the leader's no-op is submitted: the
		// next offset follows the log's end.
		s.next = g.cfg.Log.EndOffset()
		g.log.Info("became leader", "term", s.term, "next_offset", s.next)
		if g.cfg.OnLeader != nil {
			if err := g.cfg.OnLeader(s.term); err != nil {
				return fmt.Errorf("raftlog: on leader: %w", err)
			}
		}
	}
	g.publish(s)
	return nil
}

// installSnapshot replaces the log with a leader's snapshot before the
// entries that follow it are appended (a replica too far behind the
// leader's log start), restores the state machine from it and moves the
// applied index and high watermark there. It runs on Run's goroutine; the
// append's responses, stepped once the entries after it are durable, tell
// Raft the snapshot is stable and applied.
func (g *Group) installSnapshot(s *runState, snap *pb.Snapshot) error {
	if raft.IsEmptySnap(snap) {
		return nil
	}
	md := snap.GetMetadata()
	d, err := storage.DecodeSnapshotData(snap.GetData())
	if err != nil {
		return fmt.Errorf("raftlog: group %s: snapshot at %d: %w", g.cfg.Log.Name(), md.GetIndex(), err)
	}
	g.log.Info("installing a snapshot from the leader", "index", md.GetIndex(), "term", md.GetTerm(), "next_offset", d.NextOffset, "log_start", d.LogStart)
	if err := g.cfg.Log.InstallSnapshot(md.GetIndex(), md.GetTerm(), md.GetConfState(), d); err != nil {
		return fmt.Errorf("raftlog: group %s: install snapshot: %w", g.cfg.Log.Name(), err)
	}
	if r, ok := g.cfg.SM.(Restorer); ok {
		if err := r.Restore(md.GetIndex(), d.Extra); err != nil {
			return fmt.Errorf("raftlog: group %s: restore snapshot: %w", g.cfg.Log.Name(), err)
		}
	}
	s.applied = md.GetIndex()
	s.commit = max(s.commit, md.GetIndex())
	g.cfg.Log.SetApplied(s.applied)
	if g.cfg.Meta != nil {
		g.setHW(d.NextOffset)
	}
	return nil
}

// storageAppend submits a MsgStorageAppend to the log; its completion is
// queued for takeLocal.
func (g *Group) storageAppend(ctx context.Context, m *pb.Message) error {
	var hs *pb.HardState
	if m.Term != nil {
		hs = &pb.HardState{Term: m.Term, Vote: m.Vote, Commit: m.Commit}
	}
	var last uint64
	if n := len(m.GetEntries()); n > 0 {
		last = m.GetEntries()[n-1].GetIndex()
	}
	err := g.cfg.Log.Append(ctx, m.GetEntries(), hs, func(err error) {
		g.localMu.Lock()
		g.local = append(g.local, appendDone{m: m, last: last, err: err})
		g.localMu.Unlock()
		select {
		case g.localc <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("raftlog: append: %w", err)
	}
	return nil
}

// apply hands committed entries to the state machine, then completes their
// proposals (so a proposer sees the state its entry produced) and moves the
// high watermark.
func (g *Group) apply(ctx context.Context, s *runState, ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	hw := g.hw.Load()
	var normal []*pb.Entry
	flush := func() error {
		if g.cfg.SM != nil && len(normal) > 0 {
			if err := g.cfg.SM.Apply(normal); err != nil {
				return fmt.Errorf("raftlog: apply: %w", err)
			}
		}
		normal = normal[:0]
		return nil
	}
	for _, e := range ents {
		switch e.GetType() {
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			if err := flush(); err != nil {
				return err
			}
			if err := g.applyConfChange(ctx, s, e); err != nil {
				return err
			}
			continue
		}
		normal = append(normal, e)
		if g.cfg.Meta != nil && len(e.Data) > 0 {
			m, ok, err := g.cfg.Meta(e.Data)
			if err != nil {
				return fmt.Errorf("raftlog: committed entry %d: %w", e.GetIndex(), err)
			}
			if ok && m.Count > 0 {
				hw = m.BaseOffset + int64(m.Count)
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	s.applied = ents[len(ents)-1].GetIndex()
	g.cfg.Log.SetApplied(s.applied)
	g.setHW(hw)
	for _, e := range ents {
		if p, ok := s.waiting[e.GetIndex()]; ok {
			delete(s.waiting, e.GetIndex())
			if e.GetTerm() == p.term {
				if p.MinCopies > 1 && !p.Durable && !g.enoughCopies(s, p) {
					s.copiesq = append(s.copiesq, p)
					continue
				}
				p.finish(p.result)
			} else {
				p.finish(Result{Err: ErrNotLeader})
			}
		}
	}
	return nil
}

func (g *Group) applyConfChange(ctx context.Context, s *runState, e *pb.Entry) error {
	var cc pb.ConfChangeI
	if e.GetType() == pb.EntryConfChange {
		c := &pb.ConfChange{}
		if err := proto.Unmarshal(e.Data, c); err != nil {
			return err
		}
		cc = c
	} else {
		c := &pb.ConfChangeV2{}
		if err := proto.Unmarshal(e.Data, c); err != nil {
			return err
		}
		cc = c
	}
	cs := s.rn.ApplyConfChange(cc)
	return g.cfg.Log.SetConfState(ctx, e.GetIndex(), cs)
}

func (g *Group) publish(s *runState) {
	st := &Status{Leader: s.lead, Term: s.term, IsLeader: s.leader, Serving: s.leader && s.applied >= s.termStart,
		Commit: s.commit, Applied: s.applied, HighWatermark: g.hw.Load(), Quiesced: s.quiesced}
	if s.leader {
		st.ISR = s.isr
	}
	g.status.Store(st)
}

// trackISR recomputes the in-sync replicas as leader (decision 14): the
// leader, and every voter whose durable log (Raft's Match: followers
// acknowledge appends only once durable) reached the leader's durable end
// within the last ReplicaLagTicks ticks. It reports whether the set
// changed. Run's goroutine only.
func (g *Group) trackISR(s *runState) bool {
	// WithProgress visits the trackers without copying them (Status would
	// allocate a map per call, for every led group, every check).
	var selfMatch uint64
	s.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == g.cfg.NodeID {
			selfMatch = pr.Match
		}
	})
	isr := s.isrScratch[:0]
	lags := s.lagScratch[:0]
	s.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
		if typ == raft.ProgressTypeLearner {
			return
		}
		if id != g.cfg.NodeID {
			lags = append(lags, PeerLag{id, selfMatch - min(pr.Match, selfMatch)})
		}
		// A follower whose node is down is not caught up, even when
		// nothing was written since it died.
		if id == g.cfg.NodeID || pr.Match >= selfMatch && g.maybeLive(id) {
			s.caughtUp[id] = s.ticks
		}
		if s.ticks-s.caughtUp[id] <= uint64(g.cfg.ReplicaLagTicks) {
			isr = append(isr, id)
		}
	})
	s.lagScratch = lags
	// Publish a copy only when a lag changed: an idle group allocates
	// nothing.
	if prev := g.lag.Load(); prev == nil || !slices.Equal(*prev, lags) {
		published := slices.Clone(lags)
		g.lag.Store(&published)
	}
	slices.Sort(isr)
	s.isrScratch = isr
	if slices.Equal(isr, s.isr) {
		return false
	}
	isr = slices.Clone(isr)
	if s.isr != nil {
		g.log.Info("in-sync replicas changed", "from", s.isr, "to", isr)
	}
	prev := s.isr
	s.isr = isr
	if g.cfg.OnISRChange != nil {
		g.cfg.OnISRChange(s.term, prev, isr)
	}
	return true
}

// startRead asks Raft for a read index (Run's goroutine).
func (g *Group) startRead(s *runState, r *readReq) {
	if !s.leader {
		r.done <- ErrNotLeader
		return
	}
	if s.reads == nil {
		s.reads = map[uint64]*readReq{}
	}
	s.readID++
	r.id = s.readID
	s.reads[r.id] = r
	var ctx [8]byte
	binary.BigEndian.PutUint64(ctx[:], r.id)
	g.wake(s, "read index")
	s.rn.ReadIndex(ctx[:])
}

// finishReads answers the reads whose index is confirmed and applied.
func (g *Group) finishReads(s *runState) {
	for id, r := range s.reads {
		if r.index > 0 && s.applied >= r.index {
			r.done <- nil
			delete(s.reads, id)
		}
	}
}

// failReads answers every waiting read with err.
func (g *Group) failReads(s *runState, err error) {
	for id, r := range s.reads {
		r.done <- err
		delete(s.reads, id)
	}
}

// failPending answers every proposal Raft has seen but not committed.
func (g *Group) failPending(s *runState, err error) {
	if err == nil {
		err = ErrStopped
	}
	for _, p := range s.proposed {
		p.finish(Result{Err: err})
	}
	s.proposed = nil
	for k, p := range s.waiting {
		p.finish(Result{Err: err})
		delete(s.waiting, k)
	}
	s.durableq = s.durableq[:0]
	for _, p := range s.copiesq {
		p.finish(Result{Err: err})
	}
	s.copiesq = nil
	s.next = -1
}

// enoughCopies reports whether MinCopies voters, the leader included, have
// p's entry durably (Raft's Match). Run's goroutine only.
func (g *Group) enoughCopies(s *runState, p *Proposal) bool {
	n := 0
	s.rn.WithProgress(func(_ uint64, typ raft.ProgressType, pr tracker.Progress) {
		if typ != raft.ProgressTypeLearner && pr.Match >= p.index {
			n++
		}
	})
	return n >= p.MinCopies
}

// checkCopies answers the committed proposals that waited for MinCopies
// durable copies: once they have them, or with ErrTooFewCopies once the
// in-sync replicas are fewer than they need. Run's goroutine only.
func (g *Group) checkCopies(s *runState) {
	for len(s.copiesq) > 0 {
		p := s.copiesq[0]
		switch {
		case g.enoughCopies(s, p):
			p.finish(p.result)
		case len(s.isr) < p.MinCopies:
			p.finish(Result{Err: ErrTooFewCopies})
		default:
			return
		}
		s.copiesq[0] = nil
		s.copiesq = s.copiesq[1:]
	}
}

// failQueued answers proposals still in the queue after Run stopped.
func (g *Group) failQueued(err error) {
	if err == nil {
		err = ErrStopped
	}
	for {
		select {
		case p := <-g.props:
			p.finish(Result{Err: err})
		default:
			return
		}
	}
}

// raftLogger adapts slog to raft.Logger.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any) { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)  { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Warning(v ...any)               { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}
func (r raftLogger) Fatal(v ...any)                 { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
func (r raftLogger) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }

// tickInterval is the default length of one Raft tick.
const tickInterval = 100 * time.Millisecond
