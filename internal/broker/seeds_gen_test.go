//go:build seeds

package broker_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/chronik-go/chronik/internal/testbroker"
)

// TestWriteFuzzSeeds captures what real clients send (franz-go and kcat,
// through a recording proxy) and writes it as the seed corpora of
// FuzzBrokerConnection (whole client streams) and protocol's
// FuzzParseRequest (single frames): go test -tags seeds -run TestWriteFuzzSeeds.
func TestWriteFuzzSeeds(t *testing.T) {
	b := testbroker.Start(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var streams [][]byte
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", b.Addr)
			if err != nil {
				return
			}
			go func() {
				data, _ := io.ReadAll(io.TeeReader(c, up))
				mu.Lock()
				streams = append(streams, data)
				mu.Unlock()
				up.Close()
			}()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	proxy := ln.Addr().String()
	// franz-go: admin, produce with every codec, consume.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(proxy), kgo.DefaultProduceTopic("seeds"), kgo.AllowAutoTopicCreation())
	adm := kadm.NewClient(cl)
	_, _ = adm.CreateTopic(ctxT(t), 2, 1, nil, "seeds")
	for _, c := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		p, _ := kgo.NewClient(kgo.SeedBrokers(proxy), kgo.DefaultProduceTopic("seeds"), kgo.ProducerBatchCompression(c))
		_ = p.ProduceSync(ctxT(t), &kgo.Record{Key: []byte("k"), Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}}).FirstErr()
		p.Close()
	}
	_, _ = adm.DescribeTopicConfigs(ctxT(t), "seeds")
	_, _ = adm.ListEndOffsets(ctxT(t), "seeds")
	cons, _ := kgo.NewClient(kgo.SeedBrokers(proxy), kgo.ConsumeTopics("seeds"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	_ = cons.PollRecords(ctxT(t), 5)
	cons.Close()
	cl.Close()
	// kcat (librdkafka): metadata, produce, consume.
	_ = exec.Command("kcat", "-b", proxy, "-L").Run()
	p := exec.Command("kcat", "-b", proxy, "-P", "-t", "seeds", "-z", "lz4")
	p.Stdin = os.Stdin
	if in, err := p.StdinPipe(); err == nil {
		_ = p.Start()
		_, _ = in.Write([]byte("hello\nworld\n"))
		in.Close()
		_ = p.Wait()
	}
	_ = exec.Command("kcat", "-b", proxy, "-C", "-t", "seeds", "-e", "-o", "beginning").Run()
	time.Sleep(500 * time.Millisecond)
	ln.Close()

	mu.Lock()
	defer mu.Unlock()
	connDir := filepath.Join("testdata", "fuzz", "FuzzBrokerConnection")
	frameDir := filepath.Join("..", "protocol", "testdata", "fuzz", "FuzzParseRequest")
	for _, d := range []string{connDir, frameDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	frames := 0
	for i, s := range streams {
		if len(s) == 0 || len(s) > 64<<10 {
			continue
		}
		writeSeed(t, filepath.Join(connDir, fmt.Sprintf("client-stream-%02d", i)), s)
		for len(s) >= 4 {
			n := int(binary.BigEndian.Uint32(s))
			if n+4 > len(s) {
				break
			}
			if frames < 60 {
				writeSeed(t, filepath.Join(frameDir, fmt.Sprintf("client-frame-%02d", frames)), s[4:4+n])
			}
			frames++
			s = s[4+n:]
		}
	}
	t.Logf("captured %d streams, %d frames", len(streams), frames)
}

func writeSeed(t *testing.T, path string, b []byte) {
	if err := os.WriteFile(path, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
		t.Fatal(err)
	}
}
