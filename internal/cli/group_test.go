package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewGroupCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestGroupListAndDescribeWithLag(t *testing.T) {
	cfg := testbroker.Config(t.TempDir())
	cfg.GroupInitialRebalanceMs = 0
	b := testbroker.Start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.DefaultProduceTopic("cli"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "cli"); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 7 {
		recs = append(recs, &kgo.Record{Partition: int32(i % 2), Value: []byte("v")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "cli", Partition: 0, At: 1, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "readers", os); err != nil {
		t.Fatal(err)
	}
	// A live member of a second group.
	member, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ConsumerGroup("live"), kgo.ConsumeTopics("cli"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		member.PollFetches(pctx)
		pcancel()
		if d, _ := adm.DescribeGroups(ctx, "live"); d["live"].State == "Stable" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("group live never became stable")
		}
	}

	out, err := run(t, "list", "-b", b.Addr)
	if err != nil || !strings.Contains(out, "readers  classic  Empty") || !strings.Contains(out, "live     classic  Stable") {
		t.Fatalf("group list: %v\n%s", err, out)
	}
	out, err = run(t, "describe", "readers", "-b", b.Addr, "-o", "json")
	if err != nil {
		t.Fatal(err, out)
	}
	var ds []GroupDescription
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	if len(ds) != 1 || ds[0].State != "Empty" || ds[0].TotalLag != 3 || len(ds[0].Partitions) != 1 || *ds[0].Partitions[0].Committed != 1 || ds[0].Partitions[0].End != 4 {
		t.Fatalf("describe readers: %+v", ds)
	}
	out, err = run(t, "describe", "live", "-b", b.Addr)
	if err != nil || !strings.Contains(out, "STATE Stable") || !strings.Contains(out, "MEMBERS 1") || strings.Count(out, "\ncli ") != 2 {
		t.Fatalf("describe live: %v\n%s", err, out)
	}
	// Errors: one clear line, a non-zero exit (an error from Execute).
	if _, err := run(t, "describe", "nobody", "-b", b.Addr); err == nil || err.Error() != `group "nobody" does not exist` {
		t.Fatalf("unknown group: %v", err)
	}
	if _, err := run(t, "list", "-b", "127.0.0.1:1", "--timeout", "3s"); err == nil || !strings.HasPrefix(err.Error(), "no broker reachable at 127.0.0.1:1") {
		t.Fatalf("broker down: %v", err)
	}
	if _, err := run(t, "list", "-b", b.Addr, "-o", "yaml"); err == nil || !strings.Contains(err.Error(), `unknown output "yaml"`) {
		t.Fatalf("bad output: %v", err)
	}
}
