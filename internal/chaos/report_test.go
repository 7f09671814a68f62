package chaos

import (
	"strings"
	"testing"
)

func TestWindows(t *testing.T) {
	evs := new(h).
		nemesis(string(IsolateLeader)).produce(1, 0, "a", OK, 0).nemesis(Heal). // window 1, healed
		nemesis(string(KillLeader)).                                            // window 2, ended by the next fault
		nemesis(string(PauseLeader)).produce(1, 0, "b", OK, 1).evs              // window 3, open at the end
	ws := Windows(evs)
	if len(ws) != 3 {
		t.Fatalf("windows %+v", ws)
	}
	want := []string{string(IsolateLeader), string(KillLeader), string(PauseLeader)}
	for i, w := range ws {
		if w.Fault != want[i] || w.To <= w.From {
			t.Errorf("window %d: %+v, want fault %s with a positive span", i, w, want[i])
		}
	}
	if ws[0].To != evs[5].Time { // the heal's completion
		t.Errorf("first window ends at %d, want the heal's ok at %d", ws[0].To, evs[5].Time)
	}
	if last := evs[len(evs)-1].Time; ws[2].To != last {
		t.Errorf("open window ends at %d, want the history's end %d", ws[2].To, last)
	}
}

// TestWriteReport: the page shows both charts with the fault windows, the
// summary, every anomaly with its events, and escapes what it shows.
func TestWriteReport(t *testing.T) {
	hist := new(h).produce(1, 0, "a", OK, 0).
		nemesis(string(QuorumLoss)).produce(2, 0, "<script>x</script>", OK, 1).nemesis(Heal).
		read(9, 1, 0, rd(0, "a"), rd(1, "<script>x</script>"))
	res := Check(hist.evs, Options{})
	if res.Summary.Anomalies[AckedWithoutQuorum] != 1 {
		t.Fatalf("the planted anomaly was not found:\n%s", res.Text(0))
	}
	var b strings.Builder
	if err := WriteReport(&b, "run <1>", hist.evs, res, []string{"t=0.1s something & more"}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"<svg", "acknowledged produces per second", "produce latency",
		string(QuorumLoss), // a shaded window and the fault table
		"Anomalies found", "acked-without-quorum", "value &lt;script&gt;x&lt;/script&gt; invoked",
		"run &lt;1&gt;", "something &amp; more",
		`stroke="#c0392b" stroke-width="1.5"><title>acked-without-quorum`, // the anomaly's mark on the charts
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("page holds an unescaped value")
	}
	if strings.Count(page, "<svg") != 2 {
		t.Errorf("%d charts, want 2", strings.Count(page, "<svg"))
	}
	clean := Check(new(h).produce(1, 0, "a", OK, 0).read(9, 1, 0, rd(0, "a")).evs, Options{})
	b.Reset()
	if err := WriteReport(&b, "clean", new(h).evs, clean, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Valid: no anomalies") {
		t.Error("a clean run's page does not say it is valid")
	}
}
