package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// TestConsumeExitsOnStorageError: `chronik consume -e` of a partition with
// eight bytes flipped in a sealed segment prints the records before the
// damage and then fails with KAFKA_STORAGE_ERROR, where it used to wait
// until killed (issue 12 item 5).
func TestConsumeExitsOnStorageError(t *testing.T) {
	const n = 4000
	cfg := testbroker.Config(t.TempDir())
	cfg.SegmentBytes, cfg.ScrubBytesPerSecond = 64<<10, 0
	b, err := testbroker.Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for lo := 0; lo < n; lo += 100 {
		var recs []*kgo.Record
		for i := lo; i < lo+100; i++ {
			recs = append(recs, &kgo.Record{Topic: "dmg", Value: fmt.Appendf(nil, "%-64d", i)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "logs", "dmg-0", "*.log"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	f, err := os.OpenFile(segs[1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	if _, err := f.WriteAt([]byte("\xde\xad\xbe\xef\xde\xad\xbe\xef"), fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	b = testbroker.Start(t, cfg)
	type outcome struct {
		out string
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		out, _, err := runCmd(t, NewConsumeCommand(), "", "-t", "dmg", "-e", "-b", b.Addr)
		done <- outcome{out, err}
	}()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(time.Minute):
		t.Fatal("consume -e still waiting a minute after start (the reported hang)")
	}
	if o.err == nil || !strings.Contains(o.err.Error(), "KAFKA_STORAGE_ERROR") || !strings.Contains(o.err.Error(), "dmg-0") {
		t.Fatalf("consume -e: %v, want KAFKA_STORAGE_ERROR for dmg-0", o.err)
	}
	printed, _, _ := strings.Cut(o.out, "Usage:") // cobra prints the usage after an error
	lines := strings.Split(strings.TrimSuffix(printed, "\n"), "\n")
	if len(lines) == 0 || len(lines) >= n {
		t.Fatalf("printed %d records, want the valid prefix of %d", len(lines), n)
	}
	for i, l := range lines {
		if strings.TrimSpace(l) != fmt.Sprint(i) {
			t.Fatalf("record %d printed as %q", i, l)
		}
	}
	t.Logf("printed %d records, then: %v", len(lines), o.err)
}
