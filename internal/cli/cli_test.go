package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// runCmd runs one command tree in-process with stdin.
func runCmd(t *testing.T, cmd *cobra.Command, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errb.String(), err
}

func TestTopicCommands(t *testing.T) {
	b := testbroker.Start(t, nil)
	bs := []string{"-b", b.Addr}
	out, _, err := runCmd(t, NewTopicCommand(), "", append([]string{"create", "orders", "-p", "3", "-c", "retention.ms=3600000"}, bs...)...)
	if err != nil || strings.TrimSpace(out) != "created topic orders" {
		t.Fatalf("create: %v %q", err, out)
	}
	if _, _, err := runCmd(t, NewTopicCommand(), "", append([]string{"create", "orders"}, bs...)...); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("create twice: %v", err)
	}
	if _, _, err := runCmd(t, NewTopicCommand(), "", append([]string{"create", "orders", "--if-not-exists"}, bs...)...); err != nil {
		t.Fatalf("create --if-not-exists: %v", err)
	}
	out, _, err = runCmd(t, NewTopicCommand(), "", append([]string{"list"}, bs...)...)
	if err != nil || !strings.Contains(out, "orders") || !strings.Contains(out, "TOPIC") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, NewTopicCommand(), "", append([]string{"list", "-o", "json"}, bs...)...)
	var listed []struct {
		Topic      string `json:"topic"`
		Partitions int    `json:"partitions"`
	}
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 1 || listed[0].Partitions != 3 {
		t.Fatalf("list json: %v %s", err, out)
	}

	// Produce 5 records to partition 1, then describe.
	if _, errOut, err := runCmd(t, NewProduceCommand(), "a\nb\nc\nd\ne\n", append([]string{"-t", "orders", "-p", "1"}, bs...)...); err != nil || !strings.Contains(errOut, "produced 5 records") {
		t.Fatalf("produce: %v %s", err, errOut)
	}
	out, _, err = runCmd(t, NewTopicCommand(), "", append([]string{"describe", "orders", "-o", "json"}, bs...)...)
	var ds []TopicDescription
	if err != nil || json.Unmarshal([]byte(out), &ds) != nil || len(ds) != 1 || len(ds[0].Partitions) != 3 {
		t.Fatalf("describe: %v %s", err, out)
	}
	if p := ds[0].Partitions[1]; p.End != 5 || p.Leader != 1 || len(p.Replicas) != 1 || ds[0].Configs["retention.ms"] != "3600000" {
		t.Fatalf("describe: partition 1 %+v, configs %v", p, ds[0].Configs)
	}
	out, _, err = runCmd(t, NewTopicCommand(), "", append([]string{"describe", "orders"}, bs...)...)
	if err != nil || !strings.Contains(out, "retention.ms=3600000") || !strings.Contains(out, "PARTITION") {
		t.Fatalf("describe table: %v\n%s", err, out)
	}

	// Alter a config and the partition count.
	out, _, err = runCmd(t, NewTopicCommand(), "", append([]string{"alter", "orders", "-c", "retention.ms=7200000", "-p", "4"}, bs...)...)
	if err != nil || !strings.Contains(out, "retention.ms=7200000") || !strings.Contains(out, "partitions=4") {
		t.Fatalf("alter: %v %s", err, out)
	}
	out, _, _ = runCmd(t, NewTopicCommand(), "", append([]string{"describe", "orders", "-o", "json"}, bs...)...)
	if json.Unmarshal([]byte(out), &ds) != nil || len(ds[0].Partitions) != 4 || ds[0].Configs["retention.ms"] != "7200000" {
		t.Fatalf("after alter: %s", out)
	}
	if _, _, err := runCmd(t, NewTopicCommand(), "", append([]string{"alter", "orders", "-c", "retention.ms=banana"}, bs...)...); err == nil {
		t.Fatal("an invalid config value was accepted")
	}
	if _, _, err := runCmd(t, NewTopicCommand(), "", append([]string{"describe", "nope"}, bs...)...); err == nil || err.Error() != `topic "nope" does not exist` {
		t.Fatalf("describe unknown: %v", err)
	}
	out, _, err = runCmd(t, NewTopicCommand(), "", append([]string{"delete", "orders", "-o", "json"}, bs...)...)
	if err != nil || !strings.Contains(out, `"deleted"`) {
		t.Fatalf("delete: %v %s", err, out)
	}
	if _, _, err := runCmd(t, NewTopicCommand(), "", append([]string{"delete", "orders"}, bs...)...); err == nil || !strings.Contains(err.Error(), `delete topic "orders"`) {
		t.Fatalf("delete again: %v", err)
	}
}

func TestProduceConsumeAndGroupAdmin(t *testing.T) {
	cfg := testbroker.Config(t.TempDir())
	cfg.GroupInitialRebalanceMs = 0
	b := testbroker.Start(t, cfg)
	bs := []string{"-b", b.Addr}
	if _, _, err := runCmd(t, NewTopicCommand(), "", append([]string{"create", "ev", "-p", "2"}, bs...)...); err != nil {
		t.Fatal(err)
	}
	// JSON in: keys, headers, bytes, explicit partitions.
	in := `{"key":"k1","value":"hello","partition":0,"headers":{"h":"1"}}
{"key":"k2","value_b64":"/wA=","partition":1}
{"value":"third","partition":0}
`
	out, _, err := runCmd(t, NewProduceCommand(), in, append([]string{"-t", "ev", "-f", "json", "-o", "json"}, bs...)...)
	if err != nil || strings.Count(out, `"offset"`) != 3 {
		t.Fatalf("produce json: %v %s", err, out)
	}
	if _, _, err := runCmd(t, NewProduceCommand(), "{not json\n", append([]string{"-t", "ev", "-f", "json"}, bs...)...); err == nil || !strings.Contains(err.Error(), "line 1: not a JSON record") {
		t.Fatalf("bad json: %v", err)
	}
	// Line in, with keys.
	if _, _, err := runCmd(t, NewProduceCommand(), "x:one\ny:two\n", append([]string{"-t", "ev", "-K", ":", "-p", "1"}, bs...)...); err != nil {
		t.Fatal(err)
	}
	// Read back, JSON out, to the end.
	out, _, err = runCmd(t, NewConsumeCommand(), "", append([]string{"-t", "ev", "-e", "-o", "json"}, bs...)...)
	if err != nil {
		t.Fatal(err)
	}
	var recs []JSONRecord
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r JSONRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("consume json line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 5 {
		t.Fatalf("consumed %d records, want 5:\n%s", len(recs), out)
	}
	byValue := map[string]JSONRecord{}
	for _, r := range recs {
		switch {
		case r.Value != nil:
			byValue[*r.Value] = r
		case r.ValueB64 != nil:
			byValue["b64:"+*r.ValueB64] = r
		}
	}
	if r := byValue["hello"]; r.Key == nil || *r.Key != "k1" || r.Headers["h"] != "1" || *r.Partition != 0 || *r.Offset != 0 {
		t.Fatalf("hello: %+v", r)
	}
	if r, ok := byValue["b64:/wA="]; !ok || *r.Partition != 1 {
		t.Fatalf("bytes value not returned as value_b64: %s", out)
	}
	if r := byValue["two"]; r.Key == nil || *r.Key != "y" || *r.Offset != 2 {
		t.Fatalf("two: %+v", r)
	}
	// Line out with keys, one partition.
	out, _, err = runCmd(t, NewConsumeCommand(), "", append([]string{"-t", "ev", "-p", "1", "-e", "-K", "="}, bs...)...)
	if err != nil || out != "k2=\xff\x00\nx=one\ny=two\n" {
		t.Fatalf("consume lines: %v %q", err, out)
	}
	// As a group: reads and commits 5.
	out, _, err = runCmd(t, NewConsumeCommand(), "", append([]string{"-t", "ev", "-g", "readers", "-n", "5"}, bs...)...)
	if err != nil || strings.Count(out, "\n") != 5 {
		t.Fatalf("group consume: %v %q", err, out)
	}
	out, err = run(t, "describe", "readers", "-b", b.Addr, "-o", "json")
	if err != nil || !strings.Contains(out, `"total_lag": 0`) {
		t.Fatalf("describe after group consume: %v %s", err, out)
	}
	// Reset: dry run, then execute, to the earliest.
	out, _, err = runCmd(t, NewGroupCommand(), "", append([]string{"reset-offsets", "readers", "-t", "ev", "--to-earliest"}, bs...)...)
	if err != nil || !strings.Contains(out, "dry run") {
		t.Fatalf("reset dry run: %v %s", err, out)
	}
	out, _ = run(t, "describe", "readers", "-b", b.Addr, "-o", "json")
	if !strings.Contains(out, `"total_lag": 0`) {
		t.Fatalf("a dry run changed offsets: %s", out)
	}
	out, _, err = runCmd(t, NewGroupCommand(), "", append([]string{"reset-offsets", "readers", "-t", "ev", "--shift-by", "-1", "--execute", "-o", "json"}, bs...)...)
	var plan struct {
		Executed   bool       `json:"executed"`
		Partitions []ResetRow `json:"partitions"`
	}
	if err != nil || json.Unmarshal([]byte(out), &plan) != nil || !plan.Executed || len(plan.Partitions) != 2 || plan.Partitions[0].New != 1 || plan.Partitions[1].New != 2 {
		t.Fatalf("reset shift-by: %v %s", err, out)
	}
	out, _ = run(t, "describe", "readers", "-b", b.Addr, "-o", "json")
	if !strings.Contains(out, `"total_lag": 2`) {
		t.Fatalf("after reset: %s", out)
	}
	// A live member blocks reset and delete.
	live, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ConsumerGroup("readers"), kgo.ConsumeTopics("ev"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(live)
	for {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		live.PollFetches(pctx)
		pcancel()
		if d, _ := adm.DescribeGroups(ctx, "readers"); d["readers"].State == "Stable" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("group never stable")
		}
	}
	if _, _, err := runCmd(t, NewGroupCommand(), "", append([]string{"reset-offsets", "readers", "-t", "ev", "--to-latest", "--execute"}, bs...)...); err == nil || !strings.Contains(err.Error(), "no live members") {
		t.Fatalf("reset of a live group: %v", err)
	}
	if _, _, err := runCmd(t, NewGroupCommand(), "", append([]string{"delete", "readers"}, bs...)...); err == nil || !strings.Contains(err.Error(), "live members") {
		t.Fatalf("delete of a live group: %v", err)
	}
	live.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, err = runCmd(t, NewGroupCommand(), "", append([]string{"delete", "readers"}, bs...)...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delete after the member left: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.TrimSpace(out) != "deleted readers" {
		t.Fatalf("delete: %q", out)
	}
	if _, _, err := runCmd(t, NewGroupCommand(), "", append([]string{"delete", "readers"}, bs...)...); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("delete again: %v", err)
	}

	// A missing topic is created on produce when the broker allows it.
	if _, _, err := runCmd(t, NewProduceCommand(), "first\n", append([]string{"-t", "fresh"}, bs...)...); err != nil {
		t.Fatalf("produce to a new topic: %v", err)
	}
	if out, _, err := runCmd(t, NewConsumeCommand(), "", append([]string{"-t", "fresh", "-e"}, bs...)...); err != nil || out != "first\n" {
		t.Fatalf("consume the new topic: %v %q", err, out)
	}

	// cluster info, both outputs.
	out, _, err = runCmd(t, NewClusterCommand(), "", append([]string{"info"}, bs...)...)
	if err != nil || !strings.Contains(out, "CONTROLLER 1") || !strings.Contains(out, "BROKER") {
		t.Fatalf("cluster info: %v\n%s", err, out)
	}
	out, _, err = runCmd(t, NewClusterCommand(), "", append([]string{"info", "-o", "json"}, bs...)...)
	var ci ClusterInfo
	if err != nil || json.Unmarshal([]byte(out), &ci) != nil || len(ci.Brokers) != 1 || ci.Controller != 1 || ci.Leaders[1] < 2 || ci.ClusterID == "" {
		t.Fatalf("cluster info json: %v %s", err, out)
	}
}

// TestErrorsAreOneLineAndNonZero runs the real binary: each failure prints
// exactly one line on stderr and exits non-zero.
func TestErrorsAreOneLineAndNonZero(t *testing.T) {
	b := testbroker.Start(t, nil)
	down := testbroker.FreePort(t)
	bin := testbroker.Binary(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "describe", "nope", "-b", b.Addr}, `topic "nope" does not exist`},
		{[]string{"consume", "-t", "nope", "-e", "-b", b.Addr}, `topic "nope" does not exist`},
		{[]string{"topic", "list", "-b", down, "--timeout", "3s"}, "no broker reachable at " + down},
		{[]string{"cluster", "info", "-b", down, "--timeout", "3s"}, "no broker reachable at " + down},
		{[]string{"group", "delete", "ghost", "-b", b.Addr}, `group "ghost": it does not exist`},
		{[]string{"topic", "list", "-o", "yaml", "-b", b.Addr}, `unknown output "yaml"`},
	} {
		cmd := exec.Command(bin, c.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err == nil {
			t.Errorf("%v: exit 0", c.args)
			continue
		}
		msg := stderr.String()
		if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, c.want) {
			t.Errorf("%v: stderr %q, want one line containing %q", c.args, msg, c.want)
		}
	}
}
