package broker

import (
	"fmt"
	"testing"

	"github.com/chronik-go/chronik/internal/meta"
)

func brokersWithRacks(racks ...string) []meta.Broker {
	out := make([]meta.Broker, len(racks))
	for i, r := range racks {
		out[i] = meta.Broker{ID: int32(i + 1), Host: "h", Port: 9092, Rack: r}
	}
	return out
}

// checkPlacement verifies what a Kafka user expects of replica placement:
// distinct replicas per partition, replicas on as many racks as there are
// (up to the replication factor), and returns leaders and replicas per
// broker.
func checkPlacement(t *testing.T, brokers []meta.Broker, replicas [][]int32, rf int) (leaders, hosted map[int32]int) {
	t.Helper()
	rackOfID := map[int32]string{}
	racks := map[string]bool{}
	for _, b := range brokers {
		rackOfID[b.ID] = b.Rack
		racks[b.Rack] = true
	}
	leaders, hosted = map[int32]int{}, map[int32]int{}
	for p, r := range replicas {
		if len(r) != rf {
			t.Fatalf("partition %d: %d replicas, want %d", p, len(r), rf)
		}
		seen, seenRack := map[int32]bool{}, map[string]bool{}
		for _, id := range r {
			if _, ok := rackOfID[id]; !ok || seen[id] {
				t.Fatalf("partition %d: replicas %v: unknown or repeated broker %d", p, r, id)
			}
			seen[id] = true
			seenRack[rackOfID[id]] = true
			hosted[id]++
		}
		if want := min(rf, len(racks)); len(seenRack) != want {
			t.Fatalf("partition %d: replicas %v span %d racks, want %d", p, r, len(seenRack), want)
		}
		leaders[r[0]]++
	}
	return leaders, hosted
}

func TestAssignReplicasWithoutRacksSpreadsLeaders(t *testing.T) {
	brokers := brokersWithRacks("", "", "")
	reps := assignReplicas(brokers, "orders", 0, 30, 3)
	leaders, hosted := checkPlacement(t, brokers, reps, 3)
	for id := int32(1); id <= 3; id++ {
		if leaders[id] != 10 || hosted[id] != 30 {
			t.Fatalf("broker %d leads %d and hosts %d of 30 partitions; want 10 and 30 (%v)", id, leaders[id], hosted[id], reps)
		}
	}
	// Partitions added later continue the rotation.
	more := assignReplicas(brokers, "orders", 30, 3, 3)
	for i, r := range more {
		if r[0] != reps[i][0] {
			t.Fatalf("added partition %d led by %d; the rotation gives %d", 30+i, r[0], reps[i][0])
		}
	}
}

func TestAssignReplicasRackAware(t *testing.T) {
	for _, tc := range []struct {
		racks []string
		rf    int
		even  bool // leaders and replicas spread exactly evenly
	}{
		{[]string{"a", "a", "b", "b", "c", "c"}, 3, true},
		{[]string{"a", "b", "c", "a", "b", "c"}, 3, true},
		{[]string{"a", "a", "b", "b"}, 3, true},
		{[]string{"a", "a", "a", "b"}, 2, false},
		{[]string{"x", "y", "z"}, 2, true},
		{[]string{"a", "", "b"}, 3, true}, // a broker without a rack is a rack of its own
	} {
		t.Run(fmt.Sprint(tc.racks, "rf", tc.rf), func(t *testing.T) {
			brokers := brokersWithRacks(tc.racks...)
			n := 12 * len(brokers)
			reps := assignReplicas(brokers, "t", 0, n, tc.rf)
			leaders, hosted := checkPlacement(t, brokers, reps, tc.rf)
			if !tc.even {
				return
			}
			for _, b := range brokers {
				if leaders[b.ID] != n/len(brokers) || hosted[b.ID] != n*tc.rf/len(brokers) {
					t.Fatalf("broker %d (rack %q) leads %d and hosts %d of %d partitions; want %d and %d",
						b.ID, b.Rack, leaders[b.ID], hosted[b.ID], n, n/len(brokers), n*tc.rf/len(brokers))
				}
			}
		})
	}
}
