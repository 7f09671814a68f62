package broker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/testbroker"
)

// benchConn is a raw Kafka connection for benchmarks.
type benchConn struct {
	net.Conn
	r    *bufio.Reader
	corr int32
	fmt  *kmsg.RequestFormatter
}

// do sends req at version and decodes the response into resp.
func (c *benchConn) do(b *testing.B, req kmsg.Request, version int16, resp kmsg.Response) {
	req.SetVersion(version)
	c.corr++
	if _, err := c.Write(c.fmt.AppendRequest(nil, req, c.corr)); err != nil {
		b.Fatal(err)
	}
	var sz [4]byte
	if _, err := io.ReadFull(c.r, sz[:]); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(c.r, body); err != nil {
		b.Fatal(err)
	}
	resp.SetVersion(version)
	if err := resp.ReadFrom(body[4:]); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLegacyProduceFetch measures, through a broker, what old clients
// cost next to current ones: Produce v2 carrying a message set of format v1
// (converted into a v2 batch) against Produce v3 carrying the same 100
// records as a v2 batch, acks=1; and Fetch v3 (stored batches converted
// down to format v1) against Fetch v4 of the same 100 records.
// docs/PERFORMANCE.md quotes the ratios of one run.
func BenchmarkLegacyProduceFetch(b *testing.B) {
	br := testbroker.Start(b, nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(br.Addr))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	nc, err := net.Dial("tcp", br.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	c := &benchConn{Conn: nc, r: bufio.NewReader(nc), fmt: kmsg.NewRequestFormatter()}
	recs := make([]records.Record, 100)
	for i := range recs {
		recs[i] = records.Record{Key: []byte(fmt.Sprintf("key-%06d", i)), Value: []byte(fmt.Sprintf("%0100d", i))}
	}
	for _, codec := range []struct {
		name string
		id   int8
	}{{"none", records.CodecNone}, {"lz4", records.CodecLZ4}} {
		topic := "lb-" + codec.name
		if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, nil, topic); err != nil {
			b.Fatal(err)
		}
		batch, err := records.Recompress(records.Build(0, 1_700_000_000_000, recs), codec.id)
		if err != nil {
			b.Fatal(err)
		}
		// The same records as a v1 message set, through the broker's own
		// down-conversion (its correctness is tested on its own).
		set, err := records.DownConvert(nil, batch, 1)
		if err != nil {
			b.Fatal(err)
		}
		produce := func(b *testing.B, version int16, payload []byte) {
			req := produceReq(topic, payload)
			req.Acks = 1
			resp := kmsg.NewPtrProduceResponse()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				c.do(b, req, version, resp)
				if e := resp.Topics[0].Partitions[0].ErrorCode; e != 0 {
					b.Fatalf("produce v%d: error %d", version, e)
				}
			}
		}
		b.Run(codec.name+"/produce/v3-batch", func(b *testing.B) { produce(b, 3, batch) })
		b.Run(codec.name+"/produce/v2-messageset", func(b *testing.B) { produce(b, 2, set) })
		fetch := func(b *testing.B, version int16) {
			req := kmsg.NewPtrFetchRequest()
			req.MaxWaitMillis, req.MinBytes = 0, 1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes = int32(len(batch)) // one batch
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp := kmsg.NewPtrFetchResponse()
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				c.do(b, req, version, resp)
				if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
					b.Fatalf("fetch v%d: error %d, %d bytes", version, p.ErrorCode, len(p.RecordBatches))
				}
			}
		}
		b.Run(codec.name+"/fetch/v4-batches", func(b *testing.B) { fetch(b, 4) })
		b.Run(codec.name+"/fetch/v3-down-converted", func(b *testing.B) { fetch(b, 3) })
	}
}
