package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite docs/CONFIG.md")

func resolve(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return Resolve(fs, func(k string) string { return env[k] })
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	file := filepath.Join(t.TempDir(), "chronik.toml")
	if err := os.WriteFile(file, []byte("data.dir = \"/from/file\"\nnum.partitions = 4\n[wal]\nprofile = \"high\"\n[log]\nretention.ms = 1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := resolve(t, []string{"--config", file, "--num-partitions", "7"}, map[string]string{"CHRONIK_WAL_PROFILE": "ultra", "CHRONIK_NUM_PARTITIONS": "5"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/file" || c.NumPartitions != 7 || c.WALProfile != "ultra" || c.RetentionMs != 1000 || c.SegmentBytes != 1<<30 {
		t.Fatalf("resolved %+v", c)
	}
	if c.Advertise != "localhost:9092" {
		t.Fatalf("advertise %q", c.Advertise)
	}
}

func TestAliasesAndUnits(t *testing.T) {
	c, err := resolve(t, nil, map[string]string{"CHRONIK_WAL_ROTATION_SIZE": "250MB", "CHRONIK_PRODUCE_PROFILE": "bulk", "CHRONIK_ADVERTISED_ADDR": "broker1", "CHRONIK_BIND": "0.0.0.0:19092"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SegmentBytes != 250<<20 || c.ProduceProfile != "high-throughput" || c.Advertise != "broker1:19092" || c.Bind != "0.0.0.0:19092" {
		t.Fatalf("resolved %+v", c)
	}
}

func TestInvalidValuesNameTheKey(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--wal-profile", "fast"}, nil, "wal.profile (flag --wal-profile"},
		{nil, map[string]string{"CHRONIK_NODE_ID": "-3"}, "node.id (environment variable CHRONIK_NODE_ID"},
		{[]string{"--bind", "host:99999"}, nil, "bind"},
		{[]string{"--segment-bytes", "1KB"}, nil, "log.segment.bytes"},
		{[]string{"--auto-create-topics", "maybe"}, nil, "auto.create.topics.enable"},
	}
	for _, tc := range cases {
		_, err := resolve(t, tc.args, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want it to name %q", tc.args, tc.env, err, tc.want)
		}
	}
	file := filepath.Join(t.TempDir(), "c.toml")
	_ = os.WriteFile(file, []byte("wal.profil = \"low\"\n"), 0o644)
	if _, err := resolve(t, []string{"-c", file}, nil); err == nil || !strings.Contains(err.Error(), `unknown key "wal.profil"`) {
		t.Errorf("unknown file key: %v", err)
	}
}

// TestConfigDocUpToDate keeps docs/CONFIG.md equal to the settings table
// (go test ./internal/config -update rewrites it).
func TestConfigDocUpToDate(t *testing.T) {
	var b strings.Builder
	b.WriteString("# Configuration of `chronik server`\n\n")
	b.WriteString("Every setting is a flag, an environment variable and a key of the optional TOML file given by `--config`/`CHRONIK_CONFIG`\n")
	b.WriteString("(dotted keys may also be written as TOML tables). Precedence: **flag > environment > file > default**. An unknown file\n")
	b.WriteString("key or an invalid value stops start-up with a message that names the setting and where its value came from.\n")
	b.WriteString("Where the original Chronik had an environment variable, its name is accepted too (listed second).\n\n")
	b.WriteString("The original Chronik's cluster file (`[bind]`, `[advertise]`, `[[peers]]`, `node_id`, `replication_factor` …) and its\n")
	b.WriteString("`CHRONIK_CLUSTER_PEERS` form load too; how they map onto these settings is in [`CLUSTER.md`](CLUSTER.md).\n\n")
	b.WriteString("This file is checked against the code by `TestConfigDocUpToDate`.\n\n")
	b.WriteString("| file key | flag | environment | default |\n|---|---|---|---|\n")
	for _, s := range Settings() {
		def := s[3]
		if def == "" {
			def = "(derived)"
		}
		b.WriteString("| `" + s[0] + "` | `" + s[1] + "` | `" + strings.ReplaceAll(s[2], ", ", "`, `") + "` | `" + def + "` |\n")
	}
	// The topic configs section that follows is internal/configs' (its
	// TestTopicConfigDocUpToDate checks it).
	path := filepath.Join("..", "..", "docs", "CONFIG.md")
	got, err := os.ReadFile(path)
	head, tail := string(got), ""
	if i := strings.Index(head, "\n## Topic configs"); i >= 0 {
		head, tail = head[:i], head[i:]
	}
	if *update {
		if err := os.WriteFile(path, []byte(b.String()+tail), 0o644); err != nil {
			t.Fatal(err)
		}
		head = b.String()
	}
	if err != nil || head != b.String() {
		t.Fatalf("docs/CONFIG.md is out of date; run go test ./internal/config -update (%v)", err)
	}
}
