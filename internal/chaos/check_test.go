package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// h builds histories tersely; times rise by one per event unless set.
type h struct {
	evs []Event
	t   int64
}

func (b *h) add(e Event) *h {
	b.t += 10
	if e.Time == 0 {
		e.Time = b.t
	}
	if e.Topic == "" {
		e.Topic = "w"
	}
	b.evs = append(b.evs, e)
	return b
}

// produce: invoke then outcome (ok with offset, fail, info).
func (b *h) produce(proc int, part int32, value string, typ Type, offset int64) *h {
	b.add(Event{Process: proc, Type: Invoke, F: Produce, Partition: part, Value: value})
	e := Event{Process: proc, Type: typ, F: Produce, Partition: part, Value: value}
	if typ == OK {
		e.Offset = Off(offset)
	}
	if typ == Fail || typ == Info {
		e.Error = "timeout"
	}
	return b.add(e)
}

func (b *h) read(proc, session int, part int32, rs ...Read) *h {
	b.add(Event{Process: proc, Type: Invoke, F: ReadOp, Partition: part, Session: session})
	return b.add(Event{Process: proc, Type: OK, F: ReadOp, Partition: part, Session: session, Reads: rs})
}

func (b *h) end(proc int, part int32, offset int64) *h {
	b.add(Event{Process: proc, Type: Invoke, F: EndOffset, Partition: part})
	return b.add(Event{Process: proc, Type: OK, F: EndOffset, Partition: part, Offset: Off(offset)})
}

func (b *h) commit(proc int, part int32, offset int64) *h {
	b.add(Event{Process: proc, Type: Invoke, F: Commit, Partition: part, Group: "g", Offset: Off(offset)})
	return b.add(Event{Process: proc, Type: OK, F: Commit, Partition: part, Group: "g", Offset: Off(offset)})
}

// nemesis: a fault operation, invoked and in place.
func (b *h) nemesis(fault string) *h {
	b.add(Event{Process: NemesisProcess, Type: Invoke, F: Nemesis, Fault: fault, Value: fault + " of node 2", Topic: "-"})
	return b.add(Event{Process: NemesisProcess, Type: OK, F: Nemesis, Fault: fault, Value: fault + " of node 2", Topic: "-"})
}

func (b *h) replicas(proc int, part int32, typ Type, n int64, why string) *h {
	b.add(Event{Process: proc, Type: Invoke, F: Replicas, Partition: part})
	return b.add(Event{Process: proc, Type: typ, F: Replicas, Partition: part, Offset: Off(n), Error: why})
}

func rd(o int64, v string) Read { return Read{o, v} }

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		hist *h
		opt  Options
		want map[Kind]int
		// names must each appear in some anomaly's detail or value: the
		// report names the records involved.
		names []string
		sum   func(t *testing.T, s Summary)
	}{
		{
			name: "clean",
			hist: new(h).produce(1, 0, "a", OK, 0).produce(1, 0, "b", OK, 1).produce(2, 1, "c", OK, 0).
				read(9, 1, 0, rd(0, "a"), rd(1, "b")).read(9, 1, 1, rd(0, "c")),
			sum: func(t *testing.T, s Summary) {
				if s.Acknowledged != 3 || s.Read != 3 || s.Operations != 5 {
					t.Errorf("summary %+v", s)
				}
			},
		},
		{
			name: "clean with unknown produces seen and unseen",
			hist: new(h).produce(1, 0, "a", OK, 0).produce(2, 0, "u1", Info, 0).produce(3, 0, "u2", Info, 0).produce(1, 0, "b", OK, 2).
				read(9, 1, 0, rd(0, "a"), rd(1, "u1"), rd(2, "b")),
			sum: func(t *testing.T, s Summary) {
				if s.Unknown != 2 || s.UnknownSeen != 1 || s.Acknowledged != 2 {
					t.Errorf("summary %+v", s)
				}
			},
		},
		{
			name: "clean with a produce never completed",
			hist: new(h).produce(1, 0, "a", OK, 0).add(Event{Process: 2, Type: Invoke, F: Produce, Value: "open"}).
				read(9, 1, 0, rd(0, "a"), rd(1, "open")),
			sum: func(t *testing.T, s Summary) {
				if s.Unknown != 1 || s.UnknownSeen != 1 {
					t.Errorf("summary %+v", s)
				}
			},
		},
		{
			name: "clean fail not read",
			hist: new(h).produce(1, 0, "a", OK, 0).produce(1, 0, "x", Fail, 0).read(9, 1, 0, rd(0, "a")),
		},
		{
			name: "clean reads in two sessions may restart",
			hist: new(h).produce(1, 0, "a", OK, 0).read(9, 1, 0, rd(0, "a")).read(9, 2, 0, rd(0, "a")),
		},
		{
			name: "clean rising watermark and commits",
			hist: new(h).end(5, 0, 0).produce(1, 0, "a", OK, 0).end(5, 0, 1).end(6, 0, 1).commit(7, 0, 1).commit(7, 0, 1).
				read(9, 1, 0, rd(0, "a")),
		},
		{
			name:  "lost",
			hist:  new(h).produce(1, 0, "a", OK, 0).produce(1, 0, "b", OK, 1).produce(1, 0, "c", OK, 2).read(9, 1, 0, rd(0, "a"), rd(2, "c")),
			want:  map[Kind]int{Lost: 1},
			names: []string{"b"},
		},
		{
			name:  "lost with another value at its offset",
			hist:  new(h).produce(1, 0, "a", OK, 0).produce(1, 0, "b", OK, 1).read(9, 1, 0, rd(0, "z"), rd(1, "b")),
			want:  map[Kind]int{Lost: 1},
			names: []string{"value a", "holds z"},
		},
		{
			name:  "unseen at the tail",
			hist:  new(h).produce(1, 0, "a", OK, 0).produce(1, 0, "b", OK, 1).read(9, 1, 0, rd(0, "a")),
			want:  map[Kind]int{Unseen: 1},
			names: []string{"b"},
		},
		{
			name:  "unseen partition never read",
			hist:  new(h).produce(1, 2, "a", OK, 0),
			want:  map[Kind]int{Unseen: 1},
			names: []string{"no read of the partition"},
		},
		{
			name:  "duplicate",
			hist:  new(h).produce(1, 0, "a", OK, 0).read(9, 1, 0, rd(0, "a"), rd(1, "a")),
			want:  map[Kind]int{Duplicate: 1, Inconsistent: 1}, // also read away from its ack
			names: []string{"w-0@0", "w-0@1"},
		},
		{
			name: "duplicate allowed without idempotence",
			hist: new(h).produce(1, 0, "a", Info, 0).read(9, 1, 0, rd(0, "a"), rd(1, "a")),
			opt:  Options{AllowDuplicates: true},
			sum: func(t *testing.T, s Summary) {
				if s.Duplicates != 1 {
					t.Errorf("duplicates %d", s.Duplicates)
				}
			},
		},
		{
			name:  "duplicate of an unknown produce",
			hist:  new(h).produce(1, 0, "u", Info, 0).read(9, 1, 0, rd(3, "u"), rd(4, "u")),
			want:  map[Kind]int{Duplicate: 1},
			names: []string{"u"},
		},
		{
			name:  "inconsistent two values at one offset across readers",
			hist:  new(h).produce(1, 0, "a", Info, 0).produce(2, 0, "b", Info, 0).read(8, 1, 0, rd(5, "a")).read(9, 1, 0, rd(5, "b")),
			want:  map[Kind]int{Inconsistent: 1},
			names: []string{"a, b"},
		},
		{
			name:  "inconsistent acknowledged at one offset read at another",
			hist:  new(h).produce(1, 0, "a", OK, 3).read(9, 1, 0, rd(4, "a")),
			want:  map[Kind]int{Inconsistent: 1},
			names: []string{"acknowledged at w-0@3, read at w-0@4"},
		},
		{
			name:  "non-monotonic within a session",
			hist:  new(h).produce(1, 0, "a", OK, 0).produce(1, 0, "b", OK, 1).read(9, 1, 0, rd(0, "a"), rd(1, "b")).read(9, 1, 0, rd(1, "b")),
			want:  map[Kind]int{NonMonotonic: 1},
			names: []string{"read offset 1 after offset 1"},
		},
		{
			name:  "non-monotonic within one fetch",
			hist:  new(h).produce(1, 0, "a", OK, 0).produce(1, 0, "b", OK, 1).read(9, 1, 0, rd(1, "b"), rd(0, "a")),
			want:  map[Kind]int{NonMonotonic: 1},
			names: []string{"offset 0 after offset 1"},
		},
		{
			name:  "watermark regression",
			hist:  new(h).end(5, 0, 7).end(6, 0, 4),
			want:  map[Kind]int{WatermarkRegression: 1},
			names: []string{"end offset 4 (process 6) after 7"},
		},
		{
			name: "concurrent end-offset answers may differ",
			hist: new(h).add(Event{Process: 5, Type: Invoke, F: EndOffset, Time: 10}).add(Event{Process: 6, Type: Invoke, F: EndOffset, Time: 11}).
				add(Event{Process: 5, Type: OK, F: EndOffset, Time: 20, Offset: Off(7)}).add(Event{Process: 6, Type: OK, F: EndOffset, Time: 21, Offset: Off(4)}),
		},
		{
			name:  "stale end offset behind an acknowledgement",
			hist:  new(h).produce(1, 0, "a", OK, 0).produce(1, 0, "b", OK, 1).end(5, 0, 1).read(9, 1, 0, rd(0, "a"), rd(1, "b")),
			want:  map[Kind]int{StaleEndOffset: 1},
			names: []string{"offset 1 (b)"},
		},
		{
			name:  "commit regression",
			hist:  new(h).commit(7, 0, 10).commit(8, 0, 6),
			want:  map[Kind]int{CommitRegression: 1},
			names: []string{"committed 6 after 10"},
		},
		{
			name: "clean quorum loss: only what was invoked before it is acknowledged during it",
			hist: new(h).produce(1, 0, "a", OK, 0).
				add(Event{Process: 2, Type: Invoke, F: Produce, Partition: 0, Value: "b"}).
				nemesis(string(QuorumLoss)).
				add(Event{Process: 2, Type: OK, F: Produce, Partition: 0, Value: "b", Offset: Off(1)}).
				add(Event{Process: 3, Type: Invoke, F: Produce, Partition: 0, Value: "c"}).
				nemesis(Heal).
				add(Event{Process: 3, Type: OK, F: Produce, Partition: 0, Value: "c", Offset: Off(2)}).
				read(9, 1, 0, rd(0, "a"), rd(1, "b"), rd(2, "c")),
			sum: func(t *testing.T, s Summary) {
				if s.Faults != 1 || s.Operations != 4 {
					t.Errorf("faults %d (want 1: heals are not faults), operations %d (want 4: nemesis excluded)", s.Faults, s.Operations)
				}
			},
		},
		{
			name: "acked without quorum",
			hist: new(h).nemesis(string(QuorumLoss)).produce(1, 0, "q", OK, 0).nemesis(Heal).
				read(9, 1, 0, rd(0, "q")),
			want:  map[Kind]int{AckedWithoutQuorum: 1},
			names: []string{"q"},
		},
		{
			name: "acked without quorum until the heal begins",
			hist: new(h).nemesis(string(QuorumLoss)).produce(1, 0, "q", OK, 0).
				read(9, 1, 0, rd(0, "q")),
			want:  map[Kind]int{AckedWithoutQuorum: 1},
			names: []string{"q"},
		},
		{
			name: "other faults do not forbid acknowledgements",
			hist: new(h).nemesis(string(IsolateLeader)).produce(1, 0, "a", OK, 0).nemesis(Heal).
				read(9, 1, 0, rd(0, "a")),
		},
		{
			name: "replicas compared equal",
			hist: new(h).replicas(300, 0, OK, 40, "").replicas(301, 1, OK, 2, "").replicas(302, 2, Info, 0, "node 3 entries 5-9: corrupt"),
			sum: func(t *testing.T, s Summary) {
				if s.ReplicaEntries != 42 || s.ReplicaLogsUnchecked != 1 {
					t.Errorf("replica entries %d (want 42), logs not compared %d (want 1)", s.ReplicaEntries, s.ReplicaLogsUnchecked)
				}
			},
		},
		{
			name:  "divergent replicas",
			hist:  new(h).replicas(300, 0, OK, 40, "").replicas(301, 1, Fail, 7, "nodes 1 and 3 differ at committed raft index 7"),
			want:  map[Kind]int{DivergentReplicas: 1},
			names: []string{"differ at committed raft index 7"},
		},
		{
			name:  "failed but read",
			hist:  new(h).produce(1, 0, "x", Fail, 0).read(9, 1, 0, rd(0, "x")),
			want:  map[Kind]int{FailedButRead: 1},
			names: []string{"x"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(tc.hist.evs, tc.opt)
			for _, k := range Kinds {
				if got := r.Summary.Anomalies[k]; got != tc.want[k] {
					t.Errorf("%s: got %d, want %d\n%s", k, got, tc.want[k], r.Text(0))
				}
			}
			if r.Valid() != (len(tc.want) == 0) {
				t.Errorf("valid = %v", r.Valid())
			}
			for _, n := range tc.names {
				found := false
				for _, a := range r.Anomalies {
					if strings.Contains(a.Detail, n) || a.Value == n {
						found = true
					}
					if len(a.Events) == 0 {
						t.Errorf("%s names no events", a.Kind)
					}
				}
				if !found {
					t.Errorf("no anomaly names %q:\n%s", n, r.Text(0))
				}
			}
			if tc.sum != nil {
				tc.sum(t, r.Summary)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("json: %v", err)
			}
		})
	}
}

func TestHistoryRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	in := new(h).produce(1, 0, "a", OK, 0).produce(2, 1, "b", Info, 0).read(9, 1, 0, rd(0, "a")).end(5, 0, 0).commit(7, 0, 1).evs
	for _, e := range in {
		if err := w.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"reads":[[0,"a"]]`) || !strings.Contains(buf.String(), `"offset":0`) {
		t.Fatalf("encoding:\n%s", buf.String())
	}
	out, err := ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(in)
	b, _ := json.Marshal(out)
	if !bytes.Equal(a, b) {
		t.Fatalf("round trip:\n%s\n%s", a, b)
	}
}

func TestReadHistoryRejects(t *testing.T) {
	for name, line := range map[string]string{
		"not json":            `{"process":1,`,
		"unknown type":        `{"process":1,"type":"maybe","f":"produce","time":1,"topic":"w","partition":0}`,
		"unknown f":           `{"process":1,"type":"invoke","f":"delete","time":1,"topic":"w","partition":0}`,
		"ok without offset":   `{"process":1,"type":"ok","f":"produce","time":1,"topic":"w","partition":0,"value":"a"}`,
		"read pair too short": `{"process":1,"type":"ok","f":"read","time":1,"topic":"w","partition":0,"reads":[["a"]]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadHistory(strings.NewReader("\n" + line + "\n"))
			if !errors.Is(err, ErrBadHistory) || !strings.Contains(err.Error(), "line 2") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	done := make(chan struct{})
	for p := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 100 {
				_ = w.Write(Event{Process: p, Type: Invoke, F: Produce, Topic: "w", Value: strings.Repeat("x", i)})
			}
		}()
	}
	for range 8 {
		<-done
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	evs, err := ReadHistory(&buf)
	if err != nil || len(evs) != 800 || w.Len() != 800 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
}
