package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cluster.toml")
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// threePeers is the [[peers]] part of a cluster file, nodes 1..3 on one host.
const threePeers = `
[[peers]]
id = 1
kafka = "h:9092"
raft = "h:5001"
[[peers]]
id = 2
kafka = "h:9093"
raft = "h:5002"
[[peers]]
id = 3
kafka = "h:9094"
raft = "h:5003"
`

func TestOriginalClusterFile(t *testing.T) {
	c, err := resolve(t, []string{"--config", filepath.Join("testdata", "original-cluster-node2.toml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{
		{ID: 1, Kafka: "node1.example:9092", Raft: "node1.example:5001", WAL: "node1.example:9291"},
		{ID: 2, Kafka: "node2.example:9092", Raft: "node2.example:5001", WAL: "node2.example:9291"},
		{ID: 3, Kafka: "node3.example:9092", Raft: "node3.example:5001", WAL: "node3.example:9291"},
	}
	if !reflect.DeepEqual(c.Peers, want) {
		t.Errorf("peers %+v", c.Peers)
	}
	for _, f := range []struct{ name, got, want string }{
		{"data.dir", c.DataDir, "/var/lib/chronik"},
		{"bind", c.Bind, "0.0.0.0:9092"},
		{"advertise", c.Advertise, "node2.example:9092"},
		{"metrics.bind", c.Metrics, "0.0.0.0:13002"},
		{"raft.bind", c.RaftBind, "0.0.0.0:5001"},
		{"raft.advertise", c.RaftAdvertise, "node2.example:5001"},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if c.NodeID != 2 || c.DefaultReplicationFactor != 3 || c.MinInsyncReplicas != 2 || c.AutoRecover || !c.IsCluster() {
		t.Errorf("node.id %d, default.replication.factor %d, min.insync.replicas %d, auto_recover %v",
			c.NodeID, c.DefaultReplicationFactor, c.MinInsyncReplicas, c.AutoRecover)
	}
	if self, ok := c.Self(); !ok || self != want[1] {
		t.Errorf("self %+v %v", self, ok)
	}
	// Settings the cluster file does not name keep their defaults.
	if c.WALProfile != Defaults().WALProfile || c.NumPartitions != 1 || c.LogLevel != "info" {
		t.Errorf("untouched settings changed: %+v", c)
	}
}

func TestClusterFileMinimal(t *testing.T) {
	// Only what the env form also needs: node id and peers. Everything
	// this node binds and advertises for Raft comes from its peer entry;
	// auto_recover defaults to true as in the original.
	c, err := resolve(t, []string{"-c", writeFile(t, "node_id = 3\n"+threePeers)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RaftBind != "0.0.0.0:5003" || c.RaftAdvertise != "h:5003" || c.Advertise != "h:9094" || !c.AutoRecover {
		t.Errorf("derived raft.bind %q raft.advertise %q advertise %q auto_recover %v", c.RaftBind, c.RaftAdvertise, c.Advertise, c.AutoRecover)
	}
	if c.DefaultReplicationFactor != 3 || c.MinInsyncReplicas != 1 {
		t.Errorf("default.replication.factor %d min.insync.replicas %d", c.DefaultReplicationFactor, c.MinInsyncReplicas)
	}
}

func TestClusterEnvFormAssignsIDs(t *testing.T) {
	c, err := resolve(t, nil, map[string]string{
		"CHRONIK_CLUSTER_PEERS":       "a.example:9092:9291:5001, b.example:9092:9291:5001,[::1]:9095:5005",
		"CHRONIK_NODE_ID":             "2",
		"CHRONIK_REPLICATION_FACTOR":  "2",
		"CHRONIK_MIN_INSYNC_REPLICAS": "2",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{
		{ID: 1, Kafka: "a.example:9092", WAL: "a.example:9291", Raft: "a.example:5001"},
		{ID: 2, Kafka: "b.example:9092", WAL: "b.example:9291", Raft: "b.example:5001"},
		{ID: 3, Kafka: "[::1]:9095", Raft: "[::1]:5005"},
	}
	if !reflect.DeepEqual(c.Peers, want) {
		t.Errorf("peers %+v", c.Peers)
	}
	if c.Advertise != "b.example:9092" || c.RaftBind != "0.0.0.0:5001" || c.DefaultReplicationFactor != 2 || c.MinInsyncReplicas != 2 || !c.AutoRecover {
		t.Errorf("advertise %q raft.bind %q rf %d min.insync %d", c.Advertise, c.RaftBind, c.DefaultReplicationFactor, c.MinInsyncReplicas)
	}
}

func TestClusterDefaultReplicationFactorCappedAtPeers(t *testing.T) {
	for peers, want := range map[string]int16{
		"a:9092:5001":                           1,
		"a:9092:5001,b:9092:5001":               2,
		"a:9092:5001,b:9092:5001,c:9092:5001":   3,
		"a:1:2,b:1:2,c:1:2,d:1:2,e:1:2,f:1:200": 3,
	} {
		c, err := resolve(t, []string{"--peers", peers}, nil)
		if err != nil {
			t.Fatalf("%s: %v", peers, err)
		}
		if c.DefaultReplicationFactor != want {
			t.Errorf("%s: default.replication.factor %d, want %d", peers, c.DefaultReplicationFactor, want)
		}
	}
}

func TestStandaloneDefaultsUnchanged(t *testing.T) {
	c, err := resolve(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults()
	for _, c := range []*Config{c, d} {
		if c.IsCluster() || c.Peers != nil || c.RaftBind != "" || c.RaftAdvertise != "" || c.Rack != "" ||
			c.DefaultReplicationFactor != 1 || c.MinInsyncReplicas != 1 || c.NodeID != 1 {
			t.Errorf("standalone defaults changed: %+v", c)
		}
	}
	if err := d.Validate(); err != nil {
		t.Errorf("Defaults() does not validate: %v", err)
	}
}

func TestClusterPrecedenceFlagEnvFile(t *testing.T) {
	file := writeFile(t, `
node_id = 1
replication_factor = 1
min_insync_replicas = 1
[bind]
raft = "0.0.0.0:5001"
`+threePeers)
	env := map[string]string{
		"CHRONIK_NODE_ID":             "2",
		"CHRONIK_REPLICATION_FACTOR":  "2",
		"CHRONIK_MIN_INSYNC_REPLICAS": "2",
		"CHRONIK_RAFT_BIND":           "0.0.0.0:6001",
		"CHRONIK_BROKER_RACK":         "env-rack",
		"CHRONIK_CLUSTER_PEERS":       "x:9092:5001,y:9092:5001,z:9092:5001",
	}
	t.Run("file", func(t *testing.T) {
		c, err := resolve(t, []string{"-c", file}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.NodeID != 1 || c.DefaultReplicationFactor != 1 || c.MinInsyncReplicas != 1 || c.RaftBind != "0.0.0.0:5001" || c.Peers[0].Kafka != "h:9092" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("env over file", func(t *testing.T) {
		c, err := resolve(t, []string{"-c", file}, env)
		if err != nil {
			t.Fatal(err)
		}
		if c.NodeID != 2 || c.DefaultReplicationFactor != 2 || c.MinInsyncReplicas != 2 || c.RaftBind != "0.0.0.0:6001" || c.Rack != "env-rack" || c.Peers[1].Kafka != "y:9092" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("flag over env", func(t *testing.T) {
		c, err := resolve(t, []string{"-c", file, "--node-id", "3", "--default-replication-factor", "3", "--min-insync-replicas", "3",
			"--raft-bind", "127.0.0.1:7001", "--broker-rack", "flag-rack", "--peers", "p:1:2,q:1:2,r:1:2"}, env)
		if err != nil {
			t.Fatal(err)
		}
		if c.NodeID != 3 || c.DefaultReplicationFactor != 3 || c.MinInsyncReplicas != 3 || c.RaftBind != "127.0.0.1:7001" || c.Rack != "flag-rack" || c.Peers[2].Kafka != "r:1" || c.Advertise != "r:1" {
			t.Errorf("%+v", c)
		}
	})
}

func TestOurDottedKeysForClusterSettings(t *testing.T) {
	// Our own spelling works in the file too, the peer list as a string.
	c, err := resolve(t, []string{"-c", writeFile(t, `
peers = "a:9092:5001,b:9092:5001"
default.replication.factor = 2
min.insync.replicas = 2
broker.rack = "r1"
[node]
id = 2
[raft]
bind = "0.0.0.0:5001"
advertise = "b:5001"
`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Peers) != 2 || c.NodeID != 2 || c.DefaultReplicationFactor != 2 || c.MinInsyncReplicas != 2 || c.Rack != "r1" || c.RaftAdvertise != "b:5001" {
		t.Errorf("%+v", c)
	}
}

func TestClusterErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name string
		file string // config file body; none when empty
		args []string
		env  map[string]string
		want []string // substrings of the error, in order
	}{
		{name: "node id not among peers", env: map[string]string{"CHRONIK_CLUSTER_PEERS": "a:9092:5001,b:9092:5001", "CHRONIK_NODE_ID": "5"},
			want: []string{"invalid node.id (environment variable CHRONIK_NODE_ID)", "5 is not among the peers (environment variable CHRONIK_CLUSTER_PEERS)"}},
		{name: "node id defaulted not among peers", file: "[[peers]]\nid = 7\nkafka = \"a:9092\"\nraft = \"a:5001\"\n",
			want: []string{"invalid node.id (default)", "not among the peers (config file [[peers]])"}},
		{name: "duplicate peer ids", file: "node_id = 1\n[[peers]]\nid = 1\nkafka = \"a:9092\"\nraft = \"a:5001\"\n[[peers]]\nid = 1\nkafka = \"b:9092\"\nraft = \"b:5001\"\n",
			want: []string{"invalid peers (config file [[peers]])", "id 1 appears twice"}},
		{name: "duplicate kafka addresses", env: map[string]string{"CHRONIK_CLUSTER_PEERS": "a:9092:5001,A:9092:5002"},
			want: []string{"invalid peers (environment variable CHRONIK_CLUSTER_PEERS)", "kafka address A:9092 of peer 2 is already the kafka address of peer 1"}},
		{name: "duplicate raft addresses", file: "node_id = 1\n[[peers]]\nid = 1\nkafka = \"a:9092\"\nraft = \"c:5001\"\n[[peers]]\nid = 2\nkafka = \"b:9092\"\nraft = \"c:5001\"\n",
			want: []string{"invalid peers (config file [[peers]])", "raft address c:5001 of peer 2 is already the raft address of peer 1"}},
		{name: "raft address reused as kafka address", args: []string{"--peers", "a:9092:5001,a:5001:5002"},
			want: []string{"invalid peers (flag --peers)", "kafka address a:5001 of peer 2 is already the raft address of peer 1"}},
		{name: "replication factor above peers", file: "replication_factor = 3\n" + "node_id = 1\n[[peers]]\nid = 1\nkafka = \"a:9092\"\nraft = \"a:5001\"\n[[peers]]\nid = 2\nkafka = \"b:9092\"\nraft = \"b:5001\"\n",
			want: []string{"invalid default.replication.factor (config file key replication_factor)", "3 is larger than the number of peers (2)"}},
		{name: "replication factor without peers", env: map[string]string{"CHRONIK_REPLICATION_FACTOR": "3"},
			want: []string{"invalid default.replication.factor (environment variable CHRONIK_REPLICATION_FACTOR)", "cluster of one"}},
		{name: "replication factor out of range", file: "replication_factor = 101\n",
			want: []string{`invalid default.replication.factor (config file key replication_factor = "101")`, "out of range [1, 100]"}},
		{name: "min insync above replication factor", args: []string{"--peers", "a:9092:5001,b:9092:5001", "--min-insync-replicas", "3"},
			want: []string{"invalid min.insync.replicas (flag --min-insync-replicas)", "3 is larger than default.replication.factor 2 (default: 3, capped at the number of peers)"}},
		{name: "min insync zero", file: "min_insync_replicas = 0\n",
			want: []string{`invalid min.insync.replicas (config file key min_insync_replicas = "0")`, "out of range"}},
		{name: "peer entry without raft port", env: map[string]string{"CHRONIK_CLUSTER_PEERS": "a:9092"},
			want: []string{"invalid peers (environment variable CHRONIK_CLUSTER_PEERS", `entry 1 "a:9092": want host:kafka:wal:raft or host:kafka:raft`}},
		{name: "peer entry bad port", args: []string{"--peers", "a:9092:5001,b:x:5001"},
			want: []string{"invalid peers (flag --peers", `entry 2 "b:x:5001": bad port "x"`}},
		{name: "peer entry port out of range", args: []string{"--peers", "a:9092:70000"},
			want: []string{"invalid peers (flag --peers", `bad port "70000"`}},
		{name: "peer entry without host", args: []string{"--peers", ":9092:5001"},
			want: []string{"invalid peers (flag --peers", "want host:kafka:wal:raft"}},
		{name: "peer entry IPv6 without closing bracket", args: []string{"--peers", "[::1:9092:5001"},
			want: []string{"invalid peers (flag --peers", "want host:kafka:wal:raft"}},
		{name: "peer entry IPv6 without port separator", args: []string{"--peers", "[::1]9092:5001"},
			want: []string{"invalid peers (flag --peers", "want host:kafka:wal:raft"}},
		{name: "peer entry too many parts", args: []string{"--peers", "a:1:2:3:4"},
			want: []string{"invalid peers (flag --peers", "want host:kafka:wal:raft"}},
		{name: "file peer without port", file: "[[peers]]\nid = 1\nkafka = \"a\"\nraft = \"a:5001\"\n",
			want: []string{"peers[1].kafka", `"a" is not host:port`}},
		{name: "file peer without raft", file: "[[peers]]\nid = 1\nkafka = \"a:9092\"\nraft = \"a:5001\"\n[[peers]]\nid = 2\nkafka = \"b:9092\"\n",
			want: []string{"peers[2].raft: missing"}},
		{name: "file peer without id", file: "[[peers]]\nkafka = \"a:9092\"\nraft = \"a:5001\"\n",
			want: []string{"peers[1].id: missing"}},
		{name: "file peer id zero", file: "[[peers]]\nid = 0\nkafka = \"a:9092\"\nraft = \"a:5001\"\n",
			want: []string{"peers[1].id: 0 out of range"}},
		{name: "file peer unknown key", file: "[[peers]]\nid = 1\nhost = \"a\"\n",
			want: []string{`peers[1]: unknown key "host"`}},
		{name: "advertise does not match own peer", file: "node_id = 1\n[advertise]\nkafka = \"other:9092\"\n[[peers]]\nid = 1\nkafka = \"a:9092\"\nraft = \"a:5001\"\n",
			want: []string{"invalid advertise (config file key advertise.kafka)", "other:9092 does not match this node's peer entry (id 1, kafka a:9092)"}},
		{name: "raft advertise does not match own peer", env: map[string]string{"CHRONIK_CLUSTER_PEERS": "a:9092:5001", "CHRONIK_RAFT_ADVERTISE": "a:6001"},
			want: []string{"invalid raft.advertise (environment variable CHRONIK_RAFT_ADVERTISE)", "does not match this node's peer entry (id 1, raft a:5001)"}},
		{name: "raft bind collides with bind", args: []string{"--peers", "a:9092:5001", "--raft-bind", "127.0.0.1:9092"},
			want: []string{"invalid raft.bind (flag --raft-bind)", "collides with bind 0.0.0.0:9092 (default: 0.0.0.0 and the port of this node's peer kafka address)"}},
		{name: "raft bind without port", args: []string{"--raft-bind", "0.0.0.0"},
			want: []string{`invalid raft.bind (flag --raft-bind = "0.0.0.0")`, "not host:port"}},
		{name: "enabled false with peers", file: "enabled = false\n" + threePeers,
			want: []string{"enabled = false but peers are given (config file [[peers]])"}},
		{name: "original and our key both set", file: "node_id = 2\n[node]\nid = 3\n",
			want: []string{`keys "node.id" and "node_id" both set node.id`}},
		{name: "gossip not a table", file: "gossip = 1\n",
			want: []string{`key "gossip" must be a table`}},
		{name: "unknown key in bind table", file: "[bind]\nkafak = \"0.0.0.0:9092\"\n",
			want: []string{`unknown key "bind.kafak"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"-c", writeFile(t, tc.file)}, args...)
			}
			_, err := resolve(t, args, tc.env)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error %q\nwant it to contain %q", msg, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestValidateNeedsRaftBindWithPeers(t *testing.T) {
	// Embedders build a Config by hand; Validate is their only check.
	c := Defaults()
	c.Peers = []Peer{{ID: 1, Kafka: "a:9092", Raft: "a:5001"}}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "invalid raft.bind (default): must be set when peers are given") {
		t.Fatalf("error %v", err)
	}
	c.RaftBind = "0.0.0.0:5001"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestClusterDocMapping keeps the mapping table of docs/CLUSTER.md equal to
// the keys the loader maps.
func TestClusterDocMapping(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "CLUSTER.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		rows[line] = true
	}
	for orig, ours := range fileAliases {
		written := orig
		if i := strings.Index(orig, "."); i > 0 {
			written = "[" + orig[:i] + "] " + orig[i+1:]
		}
		found := false
		for line := range rows {
			if strings.HasPrefix(line, "| `"+written+"` | `"+ours+"` |") {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/CLUSTER.md has no row \"| `%s` | `%s` | …\"", written, ours)
		}
	}
}

// TestClusterBindFollowsPeerEntry: with peers and no bind given, the Kafka
// listener takes the port of this node's peer entry (three nodes on one
// machine need only the peer list); an explicit bind wins.
func TestClusterBindFollowsPeerEntry(t *testing.T) {
	peers := "127.0.0.1:29092:29192,127.0.0.1:29093:29193,127.0.0.1:29094:29194"
	c, err := resolve(t, nil, map[string]string{"CHRONIK_CLUSTER_PEERS": peers, "CHRONIK_NODE_ID": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Bind != "0.0.0.0:29093" || c.RaftBind != "0.0.0.0:29193" || c.Advertise != "127.0.0.1:29093" {
		t.Fatalf("bind %s raft.bind %s advertise %s", c.Bind, c.RaftBind, c.Advertise)
	}
	c, err = resolve(t, []string{"--bind", "127.0.0.1:29093"}, map[string]string{"CHRONIK_CLUSTER_PEERS": peers, "CHRONIK_NODE_ID": "2"})
	if err != nil || c.Bind != "127.0.0.1:29093" {
		t.Fatalf("explicit bind: %v %v", c, err)
	}
}
