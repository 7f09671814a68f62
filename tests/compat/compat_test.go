// Package compat proves Chronik against real Kafka clients: librdkafka
// (kcat, confluent-kafka-python), kafka-python, kafkajs, sarama,
// segmentio/kafka-go and franz-go. Every client produces records that
// franz-go reads back byte for byte, and consumes records franz-go wrote,
// with the exact offsets; admin operations are checked where the client has
// them. The run writes the client × feature matrix of docs/COMPATIBILITY.md:
// a full run fails when the committed file differs from what it observed.
package compat

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// Features of the matrix, in column order.
var features = []string{"produce", "consume", "gzip", "snappy", "lz4", "zstd", "1 MiB record", "12 partitions", "idempotent", "create topic", "describe configs", "alter config", "delete topic",
	featEager, featCooperative, feat848, featStatic}

// matrix records what each client did with each feature.
type matrix struct {
	mu    sync.Mutex
	cells map[string]map[string]string // client -> feature -> "pass" | "FAIL" | "n/a: why"
	notes map[string]string            // client -> version
	foot  map[string]string            // client/feature -> footnote of a passing cell
	// old: client (version) -> configured-for -> codec -> outcome, of the
	// legacy tests outside the matrix; tools: tool -> outcome line.
	old   map[string]map[string]map[string]string
	tools map[string]string
}

var results = &matrix{cells: map[string]map[string]string{}, notes: map[string]string{}, foot: map[string]string{},
	old: map[string]map[string]map[string]string{}, tools: map[string]string{}}

// oldClient records one legacy round trip of a client configured for an
// old broker.
func (m *matrix) oldClient(client, setting, codec, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.old[client] == nil {
		m.old[client] = map[string]map[string]string{}
	}
	if m.old[client][setting] == nil {
		m.old[client][setting] = map[string]string{}
	}
	m.old[client][setting][codec] = v
}

// tool records the outcome of a tool's test.
func (m *matrix) tool(name, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tools[name] = v
}

// legacyCodecs are the codecs message formats v0 and v1 carry.
var legacyCodecs = []string{"none", "gzip", "snappy", "lz4"}

// legacyColumns are the columns of the old clients' table.
var legacyColumns = append(slices.Clone(legacyCodecs), "group")

// note adds a footnote to a cell (a pass with a caveat the reader must see).
func (m *matrix) note(client, feature, text string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.foot[client+"\x00"+feature] = text
}

func (m *matrix) set(client, feature, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cells[client] == nil {
		m.cells[client] = map[string]string{}
	}
	m.cells[client][feature] = v
}

func (m *matrix) version(client, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notes[client] = v
}

func (m *matrix) render() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("# Client compatibility\n\n")
	b.WriteString("Written by `go test ./tests/compat` (`make compat-doc` rewrites it); a full run fails when this file differs from what\n")
	b.WriteString("it observed. Each cell is one subtest against a real Chronik broker: *produce* means records with keys, null values\n")
	b.WriteString("and headers produced by the client are read back by franz-go byte for byte at the offsets the client was given;\n")
	b.WriteString("*consume* means the client reads back exactly what franz-go wrote, offsets included; codecs, the 1 MiB record and\n")
	b.WriteString("the 12 partitions are round trips through the client; *idempotent* uses the client's idempotent producer; the admin\n")
	b.WriteString("columns use the client's admin API and are checked against the broker's state. The *group* columns run three\n")
	b.WriteString("members of the client (each its own process) over six partitions while records keep arriving: one leaves cleanly, one\n")
	b.WriteString("is killed with SIGKILL and leaves by session timeout; after each rebalance every partition has exactly one owner, as\n")
	b.WriteString("the broker and the members themselves report it; committed offsets (polled throughout) never go backwards; every record\n")
	b.WriteString("is processed at least once and none is skipped (members commit after processing). *static member* kills a member with\n")
	b.WriteString("a group.instance.id and restarts it: it gets a new member id and its old partitions back, and the other member sees no\n")
	b.WriteString("rebalance. n/a means the client has no such feature.\n\n")
	b.WriteString("The cluster column (each client producing and consuming through a leader failover on three nodes) is\n")
	b.WriteString("[COMPATIBILITY-CLUSTER.md](COMPATIBILITY-CLUSTER.md), written by `go test ./tests/cluster` (`make cluster-doc`). The peers'\n")
	b.WriteString("own test suites (franz-go's kgo integration tests) run against a broker are [COMPATIBILITY-PEERS.md](COMPATIBILITY-PEERS.md),\n")
	b.WriteString("written by `make test-peers`.\n\n")
	clients := make([]string, 0, len(m.cells))
	for c := range m.cells {
		clients = append(clients, c)
	}
	sort.Strings(clients)
	b.WriteString("| client | " + strings.Join(features, " | ") + " |\n|---|" + strings.Repeat("---|", len(features)) + "\n")
	var notes, foots []string
	for _, c := range clients {
		b.WriteString("| " + c)
		if v := m.notes[c]; v != "" {
			b.WriteString(" (" + v + ")")
		}
		for _, f := range features {
			v, ok := m.cells[c][f]
			switch {
			case !ok:
				v = "not run"
			case strings.HasPrefix(v, "n/a: "):
				notes = append(notes, fmt.Sprintf("- %s, %s: %s", c, f, strings.TrimPrefix(v, "n/a: ")))
				v = "n/a"
			}
			if text, ok := m.foot[c+"\x00"+f]; ok && v == "pass" {
				v = "pass*"
				foots = append(foots, fmt.Sprintf("- %s, %s: %s", c, f, text))
			}
			b.WriteString(" | " + v)
		}
		b.WriteString(" |\n")
	}
	if len(notes) > 0 {
		b.WriteString("\nWhy n/a:\n\n" + strings.Join(notes, "\n") + "\n")
	}
	if len(foots) > 0 {
		b.WriteString("\npass* (passed with a caveat):\n\n" + strings.Join(foots, "\n") + "\n")
	}
	if len(m.old) > 0 || len(m.tools) > 0 {
		b.WriteString("\nOld clients and tools (outside the matrix: `TestCompatLegacy*`, `TestCompatBurrow`). Each cell: the client, configured\n")
		b.WriteString("for an old broker, produces records (keys, null values, no headers: formats v0/v1 have none) through Produce v0–v2\n")
		b.WriteString("with message formats v0/v1 that franz-go reads back byte for byte at the offsets the client was told (v0 records\n")
		b.WriteString("without timestamps), and consumes them back through Fetch v0–v3 (batches converted down); *group*: the client is\n")
		b.WriteString("the one member of a consumer group (the old group protocol versions), consumes each record of two partitions once\n")
		b.WriteString("and commits, and the broker reports the committed offsets at the partitions' ends:\n\n")
		b.WriteString("| client | configured for | " + strings.Join(legacyColumns, " | ") + " |\n|---|---|" + strings.Repeat("---|", len(legacyColumns)) + "\n")
		for _, c := range slices.Sorted(maps.Keys(m.old)) {
			for _, setting := range slices.Sorted(maps.Keys(m.old[c])) {
				b.WriteString("| " + c + " | " + setting)
				for _, codec := range legacyColumns {
					v, ok := m.old[c][setting][codec]
					if !ok {
						v = "not run"
					}
					b.WriteString(" | " + v)
				}
				b.WriteString(" |\n")
			}
		}
		for _, tool := range slices.Sorted(maps.Keys(m.tools)) {
			b.WriteString("\n- " + tool + ": " + m.tools[tool] + "\n")
		}
	}
	b.WriteString(knownClientIssues)
	return b.String()
}

// knownClientIssues ends the document: client bugs that tests outside the
// matrix meet (their tests name them), with what a user can do.
const knownClientIssues = `
Known client issues (seen in tests outside the matrix):

- librdkafka before 2.1.0 (Debian bookworm ships 2.0.2, used by kcat and confluent-kafka-python here): after a topic
  that a consumer group subscribes to is deleted, the consumer's close() never returns. The revoke of the deleted
  topic's partitions leaves an op in each partition's stopped fetch queue that references the partition, so the
  partition and its leader broker handle are never freed and rd_kafka_destroy() waits for that broker thread for
  good (its log shows a new connection "timed out in state APIVERSION_QUERY": the terminating client drops its own
  ApiVersions request). Fixed upstream in librdkafka 2.1.0 (#4187); with that fix applied to 2.0.2, close() returns at
  once against Chronik. TestCompatDeleteSubscribedTopicConfluentKafkaPython checks the rebalance and the remaining
  topic, and that the broker keeps serving while such a client hangs; TestCompatDeleteSubscribedTopicFranzGo checks
  close() within 15 s.
`

var updateDoc = flag.Bool("update", false, "rewrite docs/COMPATIBILITY.md from this run")

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "chronik-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := testbroker.Config(dir)
	// KIP-848 sessions are set by the broker (Kafka: 45 s); shorter here so
	// that the kill in the group scenario is noticed as fast as with the
	// classic protocol's 6 s.
	cfg.ConsumerSessionTimeoutMs, cfg.ConsumerHeartbeatMs = 6000, 1000
	b, err := testbroker.Run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedAddr = b.Addr
	code := m.Run()
	if err := b.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		code = 1
	}
	_ = os.RemoveAll(dir)
	full := flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == ""
	path := filepath.Join("..", "..", "docs", "COMPATIBILITY.md")
	doc := results.render()
	switch {
	case *updateDoc:
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	case full && code == 0:
		old, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(old, []byte(doc)) {
			fmt.Fprintf(os.Stderr, "docs/COMPATIBILITY.md differs from this run; run make compat-doc\n--- observed:\n%s", doc)
			code = 1
		}
	}
	os.Exit(code)
}

// cell runs fn as the subtest client/feature and records its outcome.
func cell(t *testing.T, client, feature string, fn func(t *testing.T)) {
	t.Helper()
	if !slices.Contains(features, feature) {
		t.Fatalf("unknown feature %q", feature)
	}
	t.Run(feature, func(t *testing.T) {
		ok := false
		defer func() {
			if ok && !t.Failed() {
				results.set(client, feature, "pass")
			} else {
				results.set(client, feature, "FAIL")
			}
		}()
		fn(t)
		ok = true
	})
}

// notApplicable records a feature the client does not have.
func notApplicable(client, feature, why string) { results.set(client, feature, "n/a: "+why) }

// rec is a record as every driver sees it. Nil key or value means null.
type rec struct {
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Key       *string  `json:"key"`   // base64
	Value     *string  `json:"value"` // base64
	Headers   []header `json:"headers,omitempty"`
}

type header struct {
	Key   string  `json:"key"`
	Value *string `json:"value"` // base64
}

func b64(b []byte) *string {
	if b == nil {
		return nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s
}

func unb64(s *string) []byte {
	if s == nil {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(*s)
	if err != nil {
		panic(err)
	}
	return b
}

func (r rec) String() string {
	return fmt.Sprintf("p%d@%d key=%q value=%d bytes headers=%d", r.Partition, r.Offset, unb64(r.Key), len(unb64(r.Value)), len(r.Headers))
}

// sameContent compares key, value and headers.
func sameContent(a, b rec) bool {
	if !bytes.Equal(unb64(a.Key), unb64(b.Key)) || (a.Key == nil) != (b.Key == nil) {
		return false
	}
	if !bytes.Equal(unb64(a.Value), unb64(b.Value)) || (a.Value == nil) != (b.Value == nil) {
		return false
	}
	if len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !bytes.Equal(unb64(a.Headers[i].Value), unb64(b.Headers[i].Value)) {
			return false
		}
	}
	return true
}

// sampleRecords builds n records over parts partitions with keys, a null
// value, a null key and headers.
func sampleRecords(n int, parts int32, withHeaders bool) []rec {
	out := make([]rec, n)
	for i := range out {
		r := rec{Partition: int32(i) % parts, Key: b64([]byte(fmt.Sprintf("key-%d", i))), Value: b64([]byte(fmt.Sprintf("value-%d-%s", i, strings.Repeat("v", i%50))))}
		if withHeaders {
			r.Headers = []header{{Key: "h1", Value: b64([]byte(fmt.Sprint(i)))}, {Key: "h2", Value: b64([]byte("x"))}}
		}
		switch i {
		case 3:
			r.Value = nil
		case 4:
			r.Key = nil
		}
		out[i] = r
	}
	return out
}

// sharedAddr is the broker every compat test talks to (started by TestMain).
var sharedAddr string

func addr(*testing.T) string { return sharedAddr }

// topicName turns a test name into a legal topic name.
func topicName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '.'
	}, s)
}

// newTopic creates a fresh topic for one subtest.
func newTopic(t *testing.T, partitions int32, cfg map[string]*string) string {
	t.Helper()
	name := topicName(t.Name())
	adm := kadm.NewClient(kgoClient(t))
	r, err := adm.CreateTopic(ctx(t), partitions, 1, cfg, name)
	if err != nil || r.Err != nil {
		t.Fatalf("create topic %s: %v %v", name, err, r.Err)
	}
	return name
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func kgoClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// readAll reads every record of topic with franz-go, the reference reader.
func readAll(t *testing.T, topic string, n int) []rec {
	t.Helper()
	cl := kgoClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond), kgo.FetchMaxPartitionBytes(8<<20))
	var out []rec
	c := ctx(t)
	for len(out) < n {
		fs := cl.PollFetches(c)
		if c.Err() != nil {
			t.Fatalf("franz-go read %d of %d records", len(out), n)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("franz-go fetch: %v", e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, fromKgo(r)) })
	}
	return out
}

func fromKgo(r *kgo.Record) rec {
	out := rec{Partition: r.Partition, Offset: r.Offset, Key: b64(r.Key), Value: b64(r.Value)}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, header{Key: h.Key, Value: b64(h.Value)})
	}
	return out
}

// writeAll produces recs with franz-go (acks=all) and returns them with
// their offsets.
func writeAll(t *testing.T, topic string, recs []rec) []rec {
	t.Helper()
	cl := kgoClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedBytes(64<<20))
	return produceKgo(t, cl, recs)
}

// produceKgo produces recs with cl and returns them as stored.
func produceKgo(t *testing.T, cl *kgo.Client, recs []rec) []rec {
	t.Helper()
	var krs []*kgo.Record
	for _, r := range recs {
		kr := &kgo.Record{Partition: r.Partition, Key: unb64(r.Key), Value: unb64(r.Value)}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: unb64(h.Value)})
		}
		krs = append(krs, kr)
	}
	res := cl.ProduceSync(ctx(t), krs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("franz-go produce: %v", err)
	}
	out := make([]rec, len(res))
	for i, pr := range res {
		out[i] = fromKgo(pr.Record)
	}
	return out
}

// checkStored asserts that topic holds exactly want, in per-partition order,
// and, where the driver reported offsets, at those offsets.
func checkStored(t *testing.T, topic string, want []rec, offsetsKnown bool) {
	t.Helper()
	got := readAll(t, topic, len(want))
	byPart := map[int32][]rec{}
	for _, r := range got {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	wantPart := map[int32][]rec{}
	for _, r := range want {
		wantPart[r.Partition] = append(wantPart[r.Partition], r)
	}
	for p, ws := range wantPart {
		gs := byPart[p]
		if len(gs) != len(ws) {
			t.Fatalf("partition %d holds %d records, want %d", p, len(gs), len(ws))
		}
		for i := range ws {
			if gs[i].Offset != int64(i) {
				t.Fatalf("partition %d: record %d at offset %d; offsets must be dense from 0", p, i, gs[i].Offset)
			}
			if !sameContent(gs[i], ws[i]) {
				t.Fatalf("partition %d offset %d: stored %v, produced %v", p, i, gs[i], ws[i])
			}
			if offsetsKnown && ws[i].Offset != gs[i].Offset {
				t.Fatalf("partition %d: the client was told offset %d for a record stored at %d", p, ws[i].Offset, gs[i].Offset)
			}
		}
	}
}

// checkConsumed asserts that a client read exactly what franz-go wrote.
func checkConsumed(t *testing.T, written, read []rec) {
	t.Helper()
	key := func(r rec) string { return fmt.Sprintf("%d/%d", r.Partition, r.Offset) }
	byOff := map[string]rec{}
	for _, r := range read {
		if _, dup := byOff[key(r)]; dup {
			t.Fatalf("record %s delivered twice", key(r))
		}
		byOff[key(r)] = r
	}
	if len(read) != len(written) {
		t.Fatalf("client read %d records, %d were written", len(read), len(written))
	}
	for _, w := range written {
		g, ok := byOff[key(w)]
		if !ok {
			t.Fatalf("client did not read %s", key(w))
		}
		if !sameContent(g, w) {
			t.Fatalf("client read %v at %s, franz-go wrote %v", g, key(w), w)
		}
	}
}
