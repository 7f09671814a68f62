package compat

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// script runs a client script with one JSON request and decodes its result.
// A missing interpreter or library fails the test: make test installs them.
func script(t *testing.T, argv []string, req map[string]any, out any) {
	t.Helper()
	req["bootstrap"] = addr(t)
	in, _ := json.Marshal(req)
	cmd := exec.CommandContext(ctx(t), argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s(run make test, which installs the compat clients)", strings.Join(argv, " "), req["op"], err, tail(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("%s: bad output %q: %v\n%s", strings.Join(argv, " "), tail(stdout.String()), err, tail(stderr.String()))
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// scriptDriver builds a driver around a JSON-speaking client script.
func scriptDriver(t *testing.T, name string, argv []string) driver {
	return scriptDriverWith(t, name, argv, nil)
}

// scriptDriverWith is scriptDriver whose produce and consume requests also
// carry extra (client configuration the script understands).
func scriptDriverWith(t *testing.T, name string, argv []string, extra map[string]any) driver {
	with := func(req map[string]any) map[string]any {
		for k, v := range extra {
			req[k] = v
		}
		return req
	}
	var v struct{ Version string }
	script(t, argv, map[string]any{"op": "version"}, &v)
	d := driver{name: name, version: v.Version, offsetsKnown: true}
	d.produce = func(t *testing.T, topic string, recs []rec, o produceOpts) []rec {
		var res []struct {
			Partition int32  `json:"partition"`
			Offset    int64  `json:"offset"`
			Error     string `json:"error"`
		}
		script(t, argv, with(map[string]any{"op": "produce", "topic": topic, "records": recs, "codec": o.codec, "idempotent": o.idempotent}), &res)
		if len(res) != len(recs) {
			t.Fatalf("%s reported %d deliveries for %d records", name, len(res), len(recs))
		}
		out := make([]rec, len(recs))
		for i, r := range res {
			if r.Error != "" {
				t.Fatalf("%s: delivery of record %d failed: %s", name, i, r.Error)
			}
			out[i] = recs[i]
			out[i].Partition, out[i].Offset = r.Partition, r.Offset
		}
		return out
	}
	d.consume = func(t *testing.T, topic string, n int) []rec {
		var got []rec
		script(t, argv, with(map[string]any{"op": "consume", "topic": topic, "n": n}), &got)
		return got
	}
	d.admin = scriptAdmin{argv}
	return d
}

type scriptAdmin struct{ argv []string }

func (s scriptAdmin) createTopic(t *testing.T, name string, partitions int32, configs map[string]string) {
	script(t, s.argv, map[string]any{"op": "create_topic", "topic": name, "partitions": partitions, "configs": configs}, &struct{}{})
}

func (s scriptAdmin) describeConfig(t *testing.T, topic, key string) string {
	var r struct{ Value *string }
	script(t, s.argv, map[string]any{"op": "describe_config", "topic": topic, "key": key}, &r)
	if r.Value == nil {
		return ""
	}
	return *r.Value
}

func (s scriptAdmin) alterConfig(t *testing.T, topic, key, value string) {
	script(t, s.argv, map[string]any{"op": "alter_config", "topic": topic, "key": key, "value": value}, &struct{}{})
}

func (s scriptAdmin) deleteTopic(t *testing.T, topic string) {
	script(t, s.argv, map[string]any{"op": "delete_topic", "topic": topic}, &struct{}{})
}

const python = "/usr/bin/python3"

func TestConfluentKafkaPython(t *testing.T) {
	runDriver(t, scriptDriver(t, "confluent-kafka-python", []string{python, filepath.Join("clients", "confluent_client.py")}))
}

func TestKafkaPython(t *testing.T) {
	d := scriptDriver(t, "kafka-python", []string{python, filepath.Join("clients", "kafkapython_client.py")})
	d.missing = map[string]string{"idempotent": "kafka-python 2.0 has no idempotent producer"}
	runDriver(t, d)
}

func TestKafkaJS(t *testing.T) {
	if _, err := os.Stat(filepath.Join("clients", "node_modules", "kafkajs")); err != nil {
		t.Fatalf("kafkajs is not installed in tests/compat/clients (run make test): %v", err)
	}
	d := scriptDriver(t, "kafkajs", []string{"node", filepath.Join("clients", "kafkajs_client.js")})
	// kafkajs consumes only as a group member: its consume is a fresh group.
	d.missing = map[string]string{
		"zstd": "kafkajs needs the @kafkajs/zstd plugin, whose native module does not build on Node.js 20",
	}
	runDriver(t, d)
}

func TestKcat(t *testing.T) {
	out, err := exec.Command("kcat", "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat is not installed (run make test): %v", err)
	}
	version := ""
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Version" {
			version = f[1]
			if i := strings.Index(line, "librdkafka "); i >= 0 {
				version += ", librdkafka " + strings.Fields(line[i+len("librdkafka "):])[0]
			}
		}
	}
	d := driver{name: "kcat (librdkafka)", offsetsKnown: false, missing: map[string]string{
		"create topic":     "kcat has no admin operations",
		"describe configs": "kcat has no admin operations",
		"alter config":     "kcat has no admin operations",
		"delete topic":     "kcat has no admin operations",
	}, version: version}
	d.produce = func(t *testing.T, topic string, recs []rec, o produceOpts) []rec {
		// kcat sets headers per invocation: records with headers go one by one.
		for i := 0; i < len(recs); {
			j := i + 1
			for recs[i].Headers == nil && j < len(recs) && recs[j].Headers == nil && recs[j].Partition == recs[i].Partition {
				j++
			}
			args := []string{"-b", addr(t), "-P", "-t", topic, "-p", fmt.Sprint(recs[i].Partition), "-K", "\t", "-Z", "-z", o.codec,
				"-X", "message.max.bytes=8388608", "-X", fmt.Sprintf("enable.idempotence=%v", o.idempotent)}
			for _, h := range recs[i].Headers {
				args = append(args, "-H", h.Key+"="+string(unb64(h.Value)))
			}
			var in bytes.Buffer
			for _, r := range recs[i:j] {
				in.Write(unb64(r.Key))
				in.WriteByte('\t')
				in.Write(unb64(r.Value))
				in.WriteByte('\n')
			}
			cmd := exec.CommandContext(ctx(t), "kcat", args...)
			cmd.Stdin = &in
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("kcat -P: %v\n%s", err, out)
			}
			i = j
		}
		return recs
	}
	d.consume = func(t *testing.T, topic string, n int) []rec {
		cmd := exec.CommandContext(ctx(t), "kcat", "-b", addr(t), "-C", "-t", topic, "-o", "beginning", "-c", fmt.Sprint(n), "-J", "-X", "fetch.message.max.bytes=8388608")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat -C: %v\n%s", err, stderr.String())
		}
		var got []rec
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 4<<20), 16<<20)
		for sc.Scan() {
			var m struct {
				Partition int32    `json:"partition"`
				Offset    int64    `json:"offset"`
				Headers   []string `json:"headers"`
				Key       *string  `json:"key"`
				Payload   *string  `json:"payload"`
			}
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("kcat -J line %q: %v", sc.Text(), err)
			}
			r := rec{Partition: m.Partition, Offset: m.Offset}
			if m.Key != nil {
				r.Key = b64([]byte(*m.Key))
			}
			if m.Payload != nil {
				r.Value = b64([]byte(*m.Payload))
			}
			for i := 0; i+1 < len(m.Headers); i += 2 {
				r.Headers = append(r.Headers, header{Key: m.Headers[i], Value: b64([]byte(m.Headers[i+1]))})
			}
			got = append(got, r)
		}
		return got
	}
	runDriver(t, d)
}
