package configs

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the topic configs section of docs/CONFIG.md")

// notActedOn marks the documentation of configs Chronik stores and
// describes without acting on them.
const notActedOn = "accepted and stored; not acted on: "

// TestTopicConfigDocUpToDate keeps the topic configs section of
// docs/CONFIG.md (from "## Topic configs" to the end) equal to the
// definitions; -update rewrites it.
func TestTopicConfigDocUpToDate(t *testing.T) {
	var b strings.Builder
	b.WriteString("## Topic configs\n\n")
	b.WriteString("Every topic config Kafka 3.9 knows is accepted by CreateTopics, AlterConfigs and IncrementalAlterConfigs and\n")
	b.WriteString("validated as Kafka validates it (an unknown name or a bad value is `INVALID_CONFIG`, and nothing is changed); the\n")
	b.WriteString("values are kept in the metadata log and DescribeConfigs lists every config with its source (topic override, dynamic\n")
	b.WriteString("broker default, static broker setting, default) and, when asked, its synonyms, the default named by Kafka's broker\n")
	b.WriteString("config. Checked against the code by `TestTopicConfigDocUpToDate` (`go test ./internal/configs -update`).\n\n")
	b.WriteString("Acted on:\n\n| topic config | default | default from | behaviour |\n|---|---|---|---|\n")
	def := func(d Def) string {
		if d.Default == "" {
			return `""`
		}
		return "`" + d.Default + "`"
	}
	var rest []Def
	for _, d := range TopicDefs() {
		if strings.HasPrefix(d.Doc, notActedOn) {
			rest = append(rest, d)
			continue
		}
		from := "Kafka's default"
		if d.Broker != "" {
			from = "`" + d.Broker + "`"
		}
		b.WriteString("| `" + d.Name + "` | " + def(d) + " | " + from + " | " + d.Doc + " |\n")
	}
	b.WriteString("\nAccepted, stored and described, but not acted on:\n\n| topic config | default | why |\n|---|---|---|\n")
	for _, d := range rest {
		b.WriteString("| `" + d.Name + "` | " + def(d) + " | " + strings.TrimPrefix(d.Doc, notActedOn) + " |\n")
	}
	path := filepath.Join("..", "..", "docs", "CONFIG.md")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const marker = "## Topic configs"
	head, tail, found := strings.Cut(string(got), "\n"+marker)
	if found {
		tail = marker + tail
	}
	if *update {
		if err := os.WriteFile(path, []byte(head+"\n"+b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if tail != b.String() {
		t.Fatalf("the topic configs section of docs/CONFIG.md is out of date; run go test ./internal/configs -update")
	}
}
