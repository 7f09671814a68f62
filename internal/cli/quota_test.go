package cli

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/chronik-go/chronik/internal/testbroker"
)

func TestQuotaCommands(t *testing.T) {
	b := testbroker.Start(t, nil)
	bs := []string{"-b", b.Addr}
	run := func(args ...string) (string, error) {
		t.Helper()
		out, _, err := runCmd(t, NewQuotaCommand(), "", append(args, bs...)...)
		return out, err
	}
	for _, args := range [][]string{
		{"set", "--client-id", "etl", "producer_byte_rate=1048576"},
		{"set", "--user-default", "consumer_byte_rate=2097152", "request_percentage=50"},
		{"set", "--user", "alice", "--client-id-default", "producer_byte_rate=4096"},
	} {
		if out, err := run(args...); err != nil || !strings.HasPrefix(out, "set ") {
			t.Fatalf("%v: %v %q", args, err, out)
		}
	}
	out, err := run("set", "--client-id", "x", "producer_byte_rate=1", "--validate-only")
	if err != nil || !strings.Contains(out, "nothing changed") {
		t.Fatalf("validate-only: %v %q", err, out)
	}
	out, err = run("list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"USER", "CLIENT-ID", "QUOTAS", "producer_byte_rate=1048576", "alice", "<default>", "consumer_byte_rate=2097152,request_percentage=50"} {
		if !strings.Contains(out, want) {
			t.Fatalf("list lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "x ") {
		t.Fatalf("validate-only set a quota:\n%s", out)
	}
	var entries []QuotaEntry
	out, err = run("list", "-o", "json", "--user-default", "--strict")
	if err != nil || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 || !entries[0].UserDefault ||
		entries[0].Quotas["request_percentage"] != 50 || entries[0].ClientID != nil {
		t.Fatalf("list json: %v %s", err, out)
	}
	if out, err = run("delete", "--user-default", "request_percentage"); err != nil || !strings.Contains(out, "removed request_percentage") {
		t.Fatalf("delete key: %v %q", err, out)
	}
	if out, err = run("delete", "--client-id", "etl"); err != nil || !strings.Contains(out, "removed producer_byte_rate") {
		t.Fatalf("delete entity: %v %q", err, out)
	}
	out, err = run("list", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 2 {
		t.Fatalf("after delete: %v %s", err, out)
	}
	if _, err := run("delete", "--client-id", "etl"); err == nil || !strings.Contains(err.Error(), "no quotas set") {
		t.Fatalf("delete again: %v", err)
	}

	// Errors are one line and exit non-zero, through the binary.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"quota", "set", "--client-id", "a", "bytes_per_fortnight=1"}, `quotas of {client-id=a}: unknown quota key: "bytes_per_fortnight" (INVALID_REQUEST)`},
		{[]string{"quota", "set", "--client-id", "a", "producer_byte_rate=1.5"}, "must be a whole number"},
		{[]string{"quota", "set", "producer_byte_rate=1"}, "name an entity"},
		{[]string{"quota", "set", "--user", "u", "--user-default", "producer_byte_rate=1"}, "not both"},
	} {
		cmd := exec.Command(testbroker.Binary(t), append(c.args, bs...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil {
			t.Errorf("%v: exit 0", c.args)
			continue
		}
		if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, c.want) {
			t.Errorf("%v: stderr %q, want one line containing %q", c.args, msg, c.want)
		}
	}
}
