package chaos

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	got, err := ParseFaults("f1, f3-leader,F2")
	if err != nil {
		t.Fatal(err)
	}
	want := []Fault{KillLeader, KillFollower, LeaderChase, PauseLeader, Bounce}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	if back, err := ParseFaults(FormatFaults(got)); err != nil || !reflect.DeepEqual(back, got) {
		t.Fatalf("round trip: %v %v", back, err)
	}
	for _, bad := range []string{"", "f7", "f1,partition", "w9"} {
		if _, err := ParseFaults(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestSchedule: one seed, one schedule (the replay command relies on it);
// pauses outlast the election timeout; the schedule covers the duration.
func TestSchedule(t *testing.T) {
	draw := func(seed uint64) []step {
		return schedule(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), AllFaults, 3, time.Minute)
	}
	a, b := draw(42), draw(42)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different schedules")
	}
	if reflect.DeepEqual(a, draw(43)) {
		t.Fatal("different seeds, same schedule")
	}
	var total time.Duration
	for _, s := range a {
		total += s.quiet + s.hold
		if (s.fault == PauseLeader || s.fault == PauseFollower) && s.hold < 5*time.Second {
			t.Errorf("pause of %v is within the election timeout", s.hold)
		}
		if s.partition < 0 || s.partition >= 3 {
			t.Errorf("partition %d", s.partition)
		}
	}
	if total < time.Minute {
		t.Errorf("schedule covers %v", total)
	}
	if one := schedule(rand.New(rand.NewPCG(1, 2)), []Fault{Bounce}, 3, time.Nanosecond); len(one) != 1 {
		t.Errorf("%d steps for a tiny duration", len(one))
	}
}

// TestParseFaultGroups: every group names its faults, every fault is in
// AllFaults, and the faults that need the node links say so (a standalone
// run refuses them).
func TestParseFaultGroups(t *testing.T) {
	for group, want := range map[string][]Fault{
		"f4":  {IsolateLeader, IsolateFollower, Bridge, OneWay},
		"f5":  {PartitionKill},
		"f6":  {Delay, SlowLink, Resets, Flaky},
		"w4":  {QuorumLoss},
		"f8":  {PowerLoss},
		"f10": {DiskFull},
		"f9":  {BitFlip},
	} {
		got, err := ParseFaults(group)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v %v, want %v", group, got, err, want)
		}
	}
	for _, f := range AllFaults {
		net := f.networked()
		wantNet := f == IsolateLeader || f == IsolateFollower || f == Bridge || f == OneWay || f == PartitionKill ||
			f == Delay || f == SlowLink || f == Resets || f == Flaky || f == QuorumLoss || f == BitFlip
		if net != wantNet {
			t.Errorf("%s networked = %v", f, net)
		}
		cfg := RunConfig{Duration: time.Second, Faults: []Fault{f}, Nodes: 1, Binary: "b", Dir: "d"}
		if err := cfg.Validate(); (err != nil) != net {
			t.Errorf("standalone %s: Validate() = %v", f, err)
		}
	}
	// Partitions and link faults outlast the election timeout; quorum losses hold 3-6 s.
	for _, s := range schedule(rand.New(rand.NewPCG(9, 9)), AllFaults, 3, 10*time.Minute) {
		if s.fault.networked() && s.fault != QuorumLoss && s.fault != BitFlip && s.hold < 5*time.Second {
			t.Errorf("%s held %v", s.fault, s.hold)
		}
		if s.fault == QuorumLoss && (s.hold < 3*time.Second || s.hold > 6*time.Second) {
			t.Errorf("quorum loss held %v", s.hold)
		}
	}
}
