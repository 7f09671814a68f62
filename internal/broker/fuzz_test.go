package broker_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/records"
	"github.com/chronik-go/chronik/internal/testbroker"
)

// FuzzBrokerConnection sends arbitrary bytes to a real broker over TCP,
// then closes its side: the broker must answer or close the connection
// within seconds (never hang it), and keep serving other connections.
func FuzzBrokerConnection(f *testing.F) {
	b := testbroker.Start(f, nil)
	var fm kmsg.RequestFormatter
	prod := kmsg.NewPtrProduceRequest()
	prod.Acks, prod.TimeoutMillis = -1, 1000
	prod.Topics = []kmsg.ProduceRequestTopic{{Topic: "fz", Partitions: []kmsg.ProduceRequestTopicPartition{{Records: records.Build(0, 1, []records.Record{{Value: []byte("v")}})}}}}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = 60_000, 1<<20, 1<<20
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "fz", Partitions: []kmsg.FetchRequestTopicPartition{{PartitionMaxBytes: 1 << 20}}}}
	dq := kmsg.NewPtrDescribeClientQuotasRequest()
	dq.Components = []kmsg.DescribeClientQuotasRequestComponent{{EntityType: "client-id", MatchType: 2}}
	aq := kmsg.NewPtrAlterClientQuotasRequest()
	aq.ValidateOnly = true
	aq.Entries = []kmsg.AlterClientQuotasRequestEntry{{Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user"}},
		Ops: []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1024}}}}
	for _, r := range []kmsg.Request{kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrMetadataRequest(), prod, fetch, kmsg.NewPtrListOffsetsRequest(), kmsg.NewPtrCreateTopicsRequest(), dq, aq} {
		for _, v := range []int16{1, 4, 7, 9, 11} {
			if v <= r.MaxVersion() {
				r.SetVersion(v)
				f.Add(fm.AppendRequest(nil, r, 1))
			}
		}
	}
	f.Add([]byte{0, 0, 0, 4, 1, 2, 3, 4})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write(data)
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatalf("the broker held the connection open for 10s after the client closed its side")
			}
		}
		// The broker still serves everyone else.
		d, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatalf("broker stopped accepting: %v", err)
		}
		defer d.Close()
		av := kmsg.NewPtrApiVersionsRequest()
		av.SetVersion(3)
		if _, err := d.Write(fm.AppendRequest(nil, av, 9)); err != nil {
			t.Fatal(err)
		}
		_ = d.SetReadDeadline(time.Now().Add(10 * time.Second))
		var sz [4]byte
		if _, err := io.ReadFull(d, sz[:]); err != nil {
			t.Fatalf("broker does not answer ApiVersions after the fuzz input: %v", err)
		}
	})
}
