package chaos

import (
	"fmt"
	"sort"
	"strings"
)

// Kind names an anomaly class (docs/FAULTS, "Workloads and what the checker
// must prove").
type Kind string

// The anomaly classes the checker reports.
const (
	// Lost: an acknowledged produce that no read returned although reads
	// reached past its offset in its partition.
	Lost Kind = "lost"
	// Unseen: an acknowledged produce that no read returned and no read
	// reached; after a final drain of every partition this is a loss too,
	// only one the reads cannot prove by a later offset.
	Unseen Kind = "unseen"
	// Duplicate: one value read at two offsets (an anomaly only with an
	// idempotent producer; see Options.AllowDuplicates).
	Duplicate Kind = "duplicate"
	// Inconsistent: two values read at one offset, or a value acknowledged
	// at one offset and read at another.
	Inconsistent Kind = "inconsistent-offsets"
	// NonMonotonic: a reader session's offsets not strictly rising.
	NonMonotonic Kind = "non-monotonic"
	// WatermarkRegression: an end-offset answer lower than an answer that
	// completed before this query was invoked.
	WatermarkRegression Kind = "watermark-regression"
	// StaleEndOffset: an end-offset answer not past an offset whose
	// acknowledgement completed before the query was invoked.
	StaleEndOffset Kind = "stale-end-offset"
	// CommitRegression: a group's committed offset for a partition lower
	// than a commit that completed before this one was invoked.
	CommitRegression Kind = "commit-regression"
	// FailedButRead: a produce reported as certainly failed whose value was
	// read.
	FailedButRead Kind = "failed-but-read"
	// AckedWithoutQuorum: a produce invoked after a quorum loss was in
	// place (W4: two of three nodes unreachable or down) and acknowledged
	// before the heal began; acks=all must never be answered then.
	AckedWithoutQuorum Kind = "acked-without-quorum"
	// DivergentReplicas: two replicas hold different bytes for a committed
	// entry (W8, the replica comparison after the run).
	DivergentReplicas Kind = "divergent-replicas"
)

// Kinds lists every class in report order.
var Kinds = []Kind{Lost, Unseen, Duplicate, Inconsistent, NonMonotonic, WatermarkRegression, StaleEndOffset, CommitRegression, FailedButRead,
	AckedWithoutQuorum, DivergentReplicas}

// Options tune what counts as an anomaly.
type Options struct {
	// AllowDuplicates counts duplicates without reporting them, for
	// producers that are not idempotent (retries may write twice).
	AllowDuplicates bool
}

// Anomaly is one violation with the records and events that show it.
type Anomaly struct {
	Kind      Kind    `json:"kind"`
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    *int64  `json:"offset,omitempty"`
	Value     string  `json:"value,omitempty"`
	Detail    string  `json:"detail"`
	Events    []Event `json:"events"`
}

// Summary counts what a history holds.
type Summary struct {
	Operations   int `json:"operations"`   // invocations
	Produces     int `json:"produces"`     // produce invocations
	Acknowledged int `json:"acknowledged"` // produce ok
	Failed       int `json:"failed"`       // produce fail
	Unknown      int `json:"unknown"`      // produce info or never completed
	UnknownSeen  int `json:"unknown_seen"` // of those, read
	Read         int `json:"read"`         // distinct (partition, offset) read
	Reads        int `json:"reads"`        // read operations that succeeded
	EndOffsets   int `json:"end_offsets"`  // end-offset answers
	Commits      int `json:"commits"`      // commits that succeeded
	Duplicates   int `json:"duplicates"`   // values read at more than one offset, counted even when allowed
	Faults       int `json:"faults"`       // nemesis operations other than heals
	// ReplicaEntries counts the committed entries compared across
	// replicas after the run (W8).
	ReplicaEntries int `json:"replica_entries"`
	// ReplicaLogsUnchecked counts logs whose comparison could not be made
	// (a replica would not open or a committed entry would not read).
	ReplicaLogsUnchecked int `json:"replica_logs_unchecked"`
	// Anomalies counts each class (zero classes included, so a report
	// shows what was checked).
	Anomalies map[Kind]int `json:"anomalies"`
}

// Result is the checker's verdict.
type Result struct {
	Summary   Summary   `json:"summary"`
	Anomalies []Anomaly `json:"anomalies"`
}

// Valid reports whether no anomaly was found.
func (r *Result) Valid() bool { return len(r.Anomalies) == 0 }

type tp struct {
	topic     string
	partition int32
}

type at struct {
	tp
	offset int64
}

// op is an invocation with its completion (nil while none arrived).
type op struct {
	inv, done *Event
}

func (o op) typ() Type {
	if o.done == nil {
		return Info
	}
	return o.done.Type
}

func (o op) events() []Event {
	if o.done == nil {
		return []Event{*o.inv}
	}
	return []Event{*o.inv, *o.done}
}

// Check examines a history. It never fails: a malformed pairing (a
// completion without an invocation) is treated as its own invocation, so a
// truncated history is still checked as far as it goes.
func Check(events []Event, opt Options) *Result {
	res := &Result{Summary: Summary{Anomalies: map[Kind]int{}}}
	for _, k := range Kinds {
		res.Summary.Anomalies[k] = 0
	}
	ops := pair(events)
	add := func(a Anomaly) {
		res.Anomalies = append(res.Anomalies, a)
		res.Summary.Anomalies[a.Kind]++
	}

	var produces, reads, ends, commits, nemesis, replicas []op
	for _, o := range ops {
		switch o.inv.F {
		case Nemesis:
			nemesis = append(nemesis, o)
			continue
		case Replicas:
			replicas = append(replicas, o)
			continue
		case Produce:
			produces = append(produces, o)
		case ReadOp:
			reads = append(reads, o)
		case EndOffset:
			ends = append(ends, o)
		case Commit:
			commits = append(commits, o)
		}
	}
	res.Summary.Operations = len(ops) - len(nemesis) - len(replicas)
	res.Summary.Produces = len(produces)

	// What the reads returned.
	readAt := map[at]map[string]*Event{} // offset → value → first read event
	valueAt := map[string]map[at]*Event{}
	maxRead := map[tp]int64{}
	type sessionKey struct {
		process, session int
		tp
	}
	last := map[sessionKey]struct {
		off int64
		ev  *Event
	}{}
	for _, o := range reads {
		if o.typ() != OK {
			continue
		}
		res.Summary.Reads++
		e := o.done
		p := tp{e.Topic, e.Partition}
		k := sessionKey{e.Process, e.Session, p}
		for _, r := range e.Reads {
			if prev, ok := last[k]; ok && r.Offset <= prev.off {
				evs := []Event{*e}
				if prev.ev != e {
					evs = []Event{*prev.ev, *e}
				}
				add(Anomaly{Kind: NonMonotonic, Topic: p.topic, Partition: p.partition, Offset: Off(r.Offset), Value: r.Value, Events: evs,
					Detail: fmt.Sprintf("process %d session %d read offset %d after offset %d", e.Process, e.Session, r.Offset, prev.off)})
			}
			last[k] = struct {
				off int64
				ev  *Event
			}{r.Offset, e}
			a := at{p, r.Offset}
			if readAt[a] == nil {
				readAt[a] = map[string]*Event{}
			}
			if _, seen := readAt[a][r.Value]; !seen {
				readAt[a][r.Value] = e
			}
			if valueAt[r.Value] == nil {
				valueAt[r.Value] = map[at]*Event{}
			}
			if _, seen := valueAt[r.Value][a]; !seen {
				valueAt[r.Value][a] = e
			}
			if m, ok := maxRead[p]; !ok || r.Offset > m {
				maxRead[p] = r.Offset
			}
		}
	}
	res.Summary.Read = len(readAt)

	// Two values at one offset.
	for _, a := range sortedAts(readAt) {
		vals := readAt[a]
		if len(vals) < 2 {
			continue
		}
		names := sortedKeys(vals)
		var evs []Event
		for _, v := range names {
			evs = append(evs, *vals[v])
		}
		add(Anomaly{Kind: Inconsistent, Topic: a.topic, Partition: a.partition, Offset: Off(a.offset), Value: strings.Join(names, ","), Events: evs,
			Detail: fmt.Sprintf("offset %d read with %d values: %s", a.offset, len(names), strings.Join(names, ", "))})
	}
	// One value at two offsets.
	for _, v := range sortedKeys(valueAt) {
		where := valueAt[v]
		if len(where) < 2 {
			continue
		}
		res.Summary.Duplicates++
		if opt.AllowDuplicates {
			continue
		}
		ats := sortedAts(where)
		var evs []Event
		var offs []string
		for _, a := range ats {
			evs = append(evs, *where[a])
			offs = append(offs, fmt.Sprintf("%s-%d@%d", a.topic, a.partition, a.offset))
		}
		add(Anomaly{Kind: Duplicate, Topic: ats[0].topic, Partition: ats[0].partition, Value: v, Events: evs,
			Detail: fmt.Sprintf("value %s read at %s", v, strings.Join(offs, ", "))})
	}

	// Each produce against the reads.
	for _, o := range produces {
		inv := o.inv
		p := tp{inv.Topic, inv.Partition}
		seen := len(valueAt[inv.Value]) > 0
		switch o.typ() {
		case Info, Invoke:
			res.Summary.Unknown++
			if seen {
				res.Summary.UnknownSeen++
			}
		case Fail:
			res.Summary.Failed++
			if seen {
				add(Anomaly{Kind: FailedButRead, Topic: p.topic, Partition: p.partition, Value: inv.Value, Events: append(o.events(), readEvents(valueAt[inv.Value])...),
					Detail: fmt.Sprintf("produce of %s failed (%s) but the value was read", inv.Value, o.done.Error)})
			}
		case OK:
			res.Summary.Acknowledged++
			d := o.done
			p = tp{d.Topic, d.Partition}
			ack := at{p, *d.Offset}
			if seen {
				for a, e := range valueAt[inv.Value] {
					if a != ack {
						add(Anomaly{Kind: Inconsistent, Topic: p.topic, Partition: p.partition, Offset: Off(ack.offset), Value: inv.Value,
							Events: append(o.events(), *e),
							Detail: fmt.Sprintf("value %s acknowledged at %s-%d@%d, read at %s-%d@%d", inv.Value, p.topic, p.partition, ack.offset, a.topic, a.partition, a.offset)})
					}
				}
				continue
			}
			evs := o.events()
			there := ""
			for _, v := range sortedKeys(readAt[ack]) {
				evs = append(evs, *readAt[ack][v])
				there = fmt.Sprintf("; offset %d holds %s", ack.offset, v)
			}
			if m, ok := maxRead[p]; ok && m > ack.offset {
				add(Anomaly{Kind: Lost, Topic: p.topic, Partition: p.partition, Offset: Off(ack.offset), Value: inv.Value, Events: evs,
					Detail: fmt.Sprintf("value %s acknowledged at offset %d never read; reads reached offset %d%s", inv.Value, ack.offset, m, there)})
			} else {
				reached := "no read of the partition"
				if ok {
					reached = fmt.Sprintf("reads reached offset %d", m)
				}
				add(Anomaly{Kind: Unseen, Topic: p.topic, Partition: p.partition, Offset: Off(ack.offset), Value: inv.Value, Events: evs,
					Detail: fmt.Sprintf("value %s acknowledged at offset %d never read; %s%s", inv.Value, ack.offset, reached, there)})
			}
		}
	}

	checkEndOffsets(res, ends, produces, add)
	checkCommits(res, commits, add)
	checkQuorum(res, nemesis, produces, add)
	checkReplicas(res, replicas, add)
	return res
}

// checkQuorum finds produces acknowledged while a quorum loss was in
// place: invoked after the quorum-loss fault completed and answered ok
// before the next nemesis operation (the heal) was invoked. A produce
// invoked earlier may have been committed before the loss and is not
// counted.
func checkQuorum(res *Result, nemesis, produces []op, add func(Anomaly)) {
	type window struct {
		from, to int64
		o        op
	}
	var ws []window
	for i, o := range nemesis {
		if o.inv.Fault != Heal {
			res.Summary.Faults++
		}
		if o.inv.Fault != string(QuorumLoss) || o.typ() != OK {
			continue
		}
		w := window{from: o.done.Time, to: 1<<63 - 1, o: o}
		if i+1 < len(nemesis) {
			w.to = nemesis[i+1].inv.Time
		}
		ws = append(ws, w)
	}
	for _, w := range ws {
		for _, p := range produces {
			if p.typ() != OK || p.inv.Time <= w.from || p.done.Time >= w.to {
				continue
			}
			add(Anomaly{Kind: AckedWithoutQuorum, Topic: p.done.Topic, Partition: p.done.Partition, Offset: Off(*p.done.Offset), Value: p.inv.Value,
				Events: append(w.o.events(), p.events()...),
				Detail: fmt.Sprintf("value %s invoked at %.3fs and acknowledged at %.3fs, during %s (%.3fs-%.3fs)", p.inv.Value,
					float64(p.inv.Time)/1e9, float64(p.done.Time)/1e9, w.o.inv.Value, float64(w.from)/1e9, float64(w.to)/1e9)})
		}
	}
}

// checkReplicas turns the comparison of replicas after the run into
// anomalies: every failed comparison is a divergence.
func checkReplicas(res *Result, replicas []op, add func(Anomaly)) {
	for _, o := range replicas {
		switch o.typ() {
		case OK:
			if o.done.Offset != nil {
				res.Summary.ReplicaEntries += int(*o.done.Offset)
			}
		case Info, Invoke:
			res.Summary.ReplicaLogsUnchecked++
		case Fail:
			add(Anomaly{Kind: DivergentReplicas, Topic: o.done.Topic, Partition: o.done.Partition, Offset: o.done.Offset, Value: o.done.Value,
				Events: o.events(), Detail: o.done.Error})
		}
	}
}

// pair matches completions to invocations: a process runs one operation
// at a time, so its completion closes its open invocation.
func pair(events []Event) []op {
	var ops []op
	open := map[int]int{} // process → index into ops
	for i := range events {
		e := &events[i]
		if e.Type == Invoke {
			open[e.Process] = len(ops)
			ops = append(ops, op{inv: e})
			continue
		}
		if j, ok := open[e.Process]; ok && ops[j].inv.F == e.F {
			ops[j].done = e
			delete(open, e.Process)
			continue
		}
		ops = append(ops, op{inv: e, done: e})
	}
	return ops
}

// checkEndOffsets finds end-offset answers lower than an answer known
// before the query began (W7: the high watermark never decreases), and
// answers not past an offset acknowledged before the query began.
func checkEndOffsets(res *Result, ends, produces []op, add func(Anomaly)) {
	type point struct {
		doneAt int64
		offset int64
		o      op
	}
	answers := map[tp][]point{}
	acks := map[tp][]point{}
	var queries []op
	for _, o := range ends {
		if o.typ() != OK {
			continue
		}
		res.Summary.EndOffsets++
		p := tp{o.done.Topic, o.done.Partition}
		answers[p] = append(answers[p], point{o.done.Time, *o.done.Offset, o})
		queries = append(queries, o)
	}
	for _, o := range produces {
		if o.typ() == OK {
			p := tp{o.done.Topic, o.done.Partition}
			acks[p] = append(acks[p], point{o.done.Time, *o.done.Offset, o})
		}
	}
	// The highest point completed strictly before t.
	highest := func(ps []point, t int64) (point, bool) {
		var best point
		found := false
		for _, x := range ps {
			if x.doneAt < t && (!found || x.offset > best.offset) {
				best, found = x, true
			}
		}
		return best, found
	}
	for _, q := range queries {
		p := tp{q.done.Topic, q.done.Partition}
		got := *q.done.Offset
		if b, ok := highest(answers[p], q.inv.Time); ok && b.offset > got {
			add(Anomaly{Kind: WatermarkRegression, Topic: p.topic, Partition: p.partition, Offset: Off(got), Events: append(b.o.events(), q.events()...),
				Detail: fmt.Sprintf("end offset %d (process %d) after %d was answered (process %d)", got, q.inv.Process, b.offset, b.o.inv.Process)})
		}
		if b, ok := highest(acks[p], q.inv.Time); ok && b.offset >= got {
			add(Anomaly{Kind: StaleEndOffset, Topic: p.topic, Partition: p.partition, Offset: Off(got), Value: b.o.inv.Value, Events: append(b.o.events(), q.events()...),
				Detail: fmt.Sprintf("end offset %d (process %d) while offset %d (%s) was already acknowledged", got, q.inv.Process, b.offset, b.o.inv.Value)})
		}
	}
}

// checkCommits finds a group's committed offset going backwards: a commit
// lower than one that completed before it was invoked. Concurrent commits
// may land in either order, so only ordered pairs count.
func checkCommits(res *Result, commits []op, add func(Anomaly)) {
	type key struct {
		group string
		tp
	}
	by := map[key][]op{}
	var order []key
	for _, o := range commits {
		if o.typ() != OK {
			continue
		}
		res.Summary.Commits++
		k := key{o.done.Group, tp{o.done.Topic, o.done.Partition}}
		if by[k] == nil {
			order = append(order, k)
		}
		by[k] = append(by[k], o)
	}
	for _, k := range order {
		cs := by[k]
		for _, c := range cs {
			var best *op
			for i := range cs {
				b := &cs[i]
				if b.done.Time < c.inv.Time && (best == nil || *b.done.Offset > *best.done.Offset) {
					best = b
				}
			}
			if best != nil && *best.done.Offset > *c.done.Offset {
				add(Anomaly{Kind: CommitRegression, Topic: k.topic, Partition: k.partition, Offset: Off(*c.done.Offset), Events: append(best.events(), c.events()...),
					Detail: fmt.Sprintf("group %s committed %d after %d", k.group, *c.done.Offset, *best.done.Offset)})
			}
		}
	}
}

func readEvents(m map[at]*Event) []Event {
	var out []Event
	for _, a := range sortedAts(m) {
		out = append(out, *m[a])
	}
	return out
}

func sortedAts[V any](m map[at]V) []at {
	out := make([]at, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		if out[i].partition != out[j].partition {
			return out[i].partition < out[j].partition
		}
		return out[i].offset < out[j].offset
	})
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Text renders the verdict for people: the summary, then each anomaly with
// the events that show it (at most max per class, 0 for all).
func (r *Result) Text(maxPerKind int) string {
	var b strings.Builder
	s := r.Summary
	fmt.Fprintf(&b, "operations %d, produces %d: acknowledged %d, failed %d, unknown %d (%d of them read); read %d offsets in %d reads; end-offset answers %d; commits %d; duplicates %d; faults %d; replica entries compared %d (logs not comparable %d)\n",
		s.Operations, s.Produces, s.Acknowledged, s.Failed, s.Unknown, s.UnknownSeen, s.Read, s.Reads, s.EndOffsets, s.Commits, s.Duplicates, s.Faults, s.ReplicaEntries, s.ReplicaLogsUnchecked)
	for _, k := range Kinds {
		fmt.Fprintf(&b, "  %-22s %d\n", k, s.Anomalies[k])
	}
	shown := map[Kind]int{}
	for _, a := range r.Anomalies {
		shown[a.Kind]++
		if maxPerKind > 0 && shown[a.Kind] > maxPerKind {
			continue
		}
		fmt.Fprintf(&b, "%s %s-%d: %s\n", a.Kind, a.Topic, a.Partition, a.Detail)
		for _, e := range a.Events {
			fmt.Fprintf(&b, "    %s\n", e.line())
		}
	}
	for _, k := range Kinds {
		if maxPerKind > 0 && shown[k] > maxPerKind {
			fmt.Fprintf(&b, "(%d more %s)\n", shown[k]-maxPerKind, k)
		}
	}
	if r.Valid() {
		b.WriteString("valid: no anomalies\n")
	}
	return b.String()
}

func (e Event) line() string {
	s := fmt.Sprintf("t=%.3fs p%d %s %s %s-%d", float64(e.Time)/1e9, e.Process, e.Type, e.F, e.Topic, e.Partition)
	if e.Offset != nil {
		s += fmt.Sprintf(" offset=%d", *e.Offset)
	}
	if e.Value != "" {
		s += " value=" + e.Value
	}
	if e.Group != "" {
		s += " group=" + e.Group
	}
	if len(e.Reads) > 0 {
		s += fmt.Sprintf(" session=%d reads=%d [%d..%d]", e.Session, len(e.Reads), e.Reads[0].Offset, e.Reads[len(e.Reads)-1].Offset)
	}
	if e.Fault != "" {
		s += " fault=" + e.Fault
	}
	if e.Error != "" {
		s += " error=" + e.Error
	}
	return s
}
