package compat

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// Clients configured for old brokers, outside the matrix: librdkafka told
// not to ask ApiVersions and to assume a 0.9 or 0.10 broker (message
// format v0 or v1, Produce v1/v2, Fetch v1/v2, ListOffsets v0), kafka-python
// pinned to api_version (0, 9) / (0, 10), and Burrow, the consumer-lag
// monitor from Debian, whose sarama speaks Kafka 0.10.0's protocol.

// legacyRoundTrips produces records without headers (message formats v0
// and v1 have none) with d in every codec those formats carry, checks that
// franz-go reads them back byte for byte at the offsets d was told, and
// that d consumes back what it wrote. v0 producers send no timestamps: the
// stored records then have none (-1), which proves the old format was used.
func legacyRoundTrips(t *testing.T, d driver, argv []string, extra map[string]any, setting string, magic0 bool) {
	client := d.name + " (" + d.version + ")"
	defer legacyGroup(t, client, setting, argv, extra)
	for _, codec := range legacyCodecs {
		t.Run(codec, func(t *testing.T) {
			results.oldClient(client, setting, codec, "FAIL")
			defer func() {
				if !t.Failed() {
					results.oldClient(client, setting, codec, "pass")
				}
			}()
			topic := newTopic(t, 2, nil)
			before := time.Now().Add(-time.Minute)
			got := d.produce(t, topic, sampleRecords(120, 2, false), produceOpts{codec: codec})
			checkStored(t, topic, got, d.offsetsKnown)
			cl := kgoClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
			for n := 0; n < len(got); {
				fs := cl.PollFetches(ctx(t))
				if ctx(t).Err() != nil {
					t.Fatalf("read %d of %d records", n, len(got))
				}
				fs.EachRecord(func(r *kgo.Record) {
					n++
					ms := r.Timestamp.UnixMilli()
					switch {
					case magic0 && ms != -1:
						t.Fatalf("record at %d/%d has timestamp %d; a v0 message has none (-1)", r.Partition, r.Offset, ms)
					case !magic0 && r.Timestamp.Before(before):
						t.Fatalf("record at %d/%d has timestamp %v, want the producer's (now)", r.Partition, r.Offset, r.Timestamp)
					}
				})
			}
			checkConsumed(t, readAll(t, topic, len(got)), d.consume(t, topic, len(got)))
		})
	}
}

// legacyGroup runs the client as the only member of a consumer group
// (the old group protocol versions: JoinGroup/SyncGroup v0, OffsetCommit
// v2, OffsetFetch v1) over records franz-go wrote to two partitions: it
// must consume each once, and its commit must be what the broker then
// reports for the group.
func legacyGroup(t *testing.T, client, setting string, argv []string, extra map[string]any) {
	t.Run("group", func(t *testing.T) {
		results.oldClient(client, setting, "group", "FAIL")
		topic := newTopic(t, 2, nil)
		written := writeAll(t, topic, sampleRecords(80, 2, false))
		group := "legacy-" + topic
		req := map[string]any{"op": "group_consume", "topic": topic, "group": group, "n": len(written)}
		for k, v := range extra {
			req[k] = v
		}
		var got []rec
		script(t, argv, req, &got)
		checkConsumed(t, written, got)
		offs, err := kadm.NewClient(kgoClient(t)).FetchOffsets(ctx(t), group)
		if err != nil {
			t.Fatal(err)
		}
		for p, want := range map[int32]int64{0: 40, 1: 40} {
			if o, ok := offs.Lookup(topic, p); !ok || o.At != want {
				t.Fatalf("committed offset of partition %d: %+v, want %d", p, o, want)
			}
		}
		results.oldClient(client, setting, "group", "pass")
	})
}

func TestCompatLegacyConfluentKafkaPython(t *testing.T) {
	for _, fallback := range []string{"0.9.0", "0.10.0"} {
		t.Run("broker.version.fallback="+fallback, func(t *testing.T) {
			argv := []string{python, filepath.Join("clients", "confluent_client.py")}
			extra := map[string]any{"conf": map[string]any{"api.version.request": false, "broker.version.fallback": fallback}}
			legacyRoundTrips(t, scriptDriverWith(t, "confluent-kafka-python", argv, extra), argv, extra, "`api.version.request=false`, `broker.version.fallback="+fallback+"`", fallback == "0.9.0")
		})
	}
}

func TestCompatLegacyKafkaPython(t *testing.T) {
	for _, v := range []string{"0.9", "0.10"} {
		t.Run("api_version="+v, func(t *testing.T) {
			argv := []string{python, filepath.Join("clients", "kafkapython_client.py")}
			extra := map[string]any{"api_version": v}
			legacyRoundTrips(t, scriptDriverWith(t, "kafka-python", argv, extra), argv, extra, "`api_version=("+strings.Replace(v, ".", ", ", 1)+")`", v == "0.9")
		})
	}
}

// startLogged starts cmd with its output in a file of dir and stops it
// (SIGKILL by pid) when the test ends.
func startLogged(t *testing.T, dir, name string, cmd *exec.Cmd) string {
	t.Helper()
	log := filepath.Join(dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = f.Close()
	})
	return log
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	return tail(string(b))
}

// TestCompatBurrow runs Debian's Burrow (it needs a ZooKeeper for its own
// coordination: Debian's zookeeper, started here on a free port) against
// the broker and checks that it lists a group with the committed offsets,
// the end offsets and the lag of every partition. Burrow learns commits by
// reading __consumer_offsets with Fetch v2 (message format v1, converted
// down) and end offsets with ListOffsets v0.
func TestCompatBurrow(t *testing.T) {
	version := "version unknown"
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "burrow").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	tool := "Burrow (Debian's burrow " + version + "; its sarama speaks Kafka 0.10.0's protocol: ListOffsets v0, Fetch v2 of __consumer_offsets)"
	results.tool(tool, "FAIL")
	defer func() {
		if !t.Failed() {
			results.tool(tool, "pass: lists a group with the committed offset, end offset and lag of each of three partitions")
		}
	}()
	burrow, err := exec.LookPath("Burrow")
	if err != nil {
		t.Fatalf("Burrow is not installed (make compat-tools installs Debian's burrow): %v", err)
	}
	const zkServer = "/usr/share/zookeeper/bin/zkServer.sh"
	if _, err := os.Stat(zkServer); err != nil {
		t.Fatalf("ZooKeeper is not installed (make compat-tools installs Debian's zookeeper): %v", err)
	}
	dir := t.TempDir()
	zkAddr := testbroker.FreePort(t)
	zkHost, zkPort, _ := net.SplitHostPort(zkAddr)
	zkCfg := filepath.Join(dir, "zoo.cfg")
	writeFile(t, zkCfg, fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=%s\nadmin.enableServer=false\n", filepath.Join(dir, "zk"), zkPort, zkHost))
	zk := exec.CommandContext(ctx(t), zkServer, "start-foreground", zkCfg)
	// A small heap: the machine is shared with the broker and the other
	// clients, and ZooKeeper's default heap is a quarter of memory.
	zk.Env = append(os.Environ(), "ZOO_LOG_DIR="+dir, "SERVER_JVMFLAGS=-Xmx256m")
	zkLog := startLogged(t, dir, "zookeeper", zk)
	waitTCP(t, zkAddr, "ZooKeeper", zkLog)

	// A broker of its own: Burrow reads all of __consumer_offsets and
	// lists every topic, and the shared broker holds the history of every
	// other test by now.
	broker := testbroker.Start(t, nil).Addr
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := "burrow-lag"
	if _, err := adm.CreateTopic(ctx(t), 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{0: 10, 1: 20, 2: 30}
	for p, n := range ends {
		for i := range n {
			if err := cl.ProduceSync(ctx(t), &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	group := "burrow-group"
	committed := map[int32]int64{0: 4, 1: 20, 2: 7}
	offs := kadm.Offsets{}
	for p, o := range committed {
		offs.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	if _, err := adm.CommitOffsets(ctx(t), group, offs); err != nil {
		t.Fatalf("commit: %v", err)
	}

	httpAddr := testbroker.FreePort(t)
	writeFile(t, filepath.Join(dir, "burrow.toml"), fmt.Sprintf(`[general]
pidfile=%q
[logging]
level="info"
[zookeeper]
servers=[%q]
timeout=6
root-path="/burrow"
[client-profile.old]
client-id="burrow-compat"
kafka-version="0.10.0"
[cluster.local]
class-name="kafka"
servers=[%q]
client-profile="old"
topic-refresh=5
offset-refresh=2
[consumer.local]
class-name="kafka"
cluster="local"
servers=[%q]
client-profile="old"
start-latest=false
[httpserver.default]
address=%q
[storage.default]
class-name="inmemory"
intervals=10
min-distance=1
`, filepath.Join(dir, "burrow.pid"), zkAddr, broker, broker, httpAddr))
	burrowLog := startLogged(t, dir, "burrow", exec.CommandContext(ctx(t), burrow, "--config-dir", dir))

	type partLag struct {
		Partition  int32 `json:"partition"`
		CurrentLag int64 `json:"current_lag"`
		End        struct {
			Offset int64 `json:"offset"`
		} `json:"end"`
	}
	var last string
	deadline := time.Now().Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("Burrow never showed group %s with offsets %v and end offsets %v; last answer %s\nburrow log:\n%s\nzookeeper log:\n%s",
				group, committed, ends, last, tailFile(burrowLog), tailFile(zkLog))
		}
		time.Sleep(500 * time.Millisecond)
		var lag struct {
			Error  bool `json:"error"`
			Status struct {
				Partitions []partLag `json:"partitions"`
				TotalLag   int64     `json:"totallag"`
			} `json:"status"`
		}
		var topicResp struct {
			Error   bool    `json:"error"`
			Offsets []int64 `json:"offsets"`
		}
		if !getJSON("http://"+httpAddr+"/v3/kafka/local/consumer/"+group+"/lag", &lag, &last) ||
			!getJSON("http://"+httpAddr+"/v3/kafka/local/topic/"+topic, &topicResp, &last) || lag.Error || topicResp.Error {
			continue
		}
		ok := len(lag.Status.Partitions) == 3 && fmt.Sprint(topicResp.Offsets) == "[10 20 30]"
		for _, p := range lag.Status.Partitions {
			ok = ok && p.End.Offset == committed[p.Partition] && p.CurrentLag == ends[p.Partition]-committed[p.Partition]
		}
		if ok && lag.Status.TotalLag == 6+0+23 {
			t.Logf("Burrow: %s", last)
			return
		}
	}
}

// getJSON fetches url into v; last keeps the body for the failure message.
func getJSON(url string, v any, last *string) bool {
	resp, err := http.Get(url) //nolint:gosec // a loopback address of ours
	if err != nil {
		*last = err.Error()
		return false
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		*last = err.Error()
		return false
	}
	*last = string(raw)
	return json.Unmarshal(raw, v) == nil
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitTCP waits until addr accepts connections.
func waitTCP(t *testing.T, addr, what, log string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %v\n%s", what, addr, err, strings.TrimSpace(tailFile(log)))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
