package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// FuzzFrameReader: any bytes either decode into frames that re-encode to
// the same bytes, or stop with an error; never a panic or a frame larger
// than the limit.
func FuzzFrameReader(f *testing.F) {
	m, _ := encodeMessage(7, msg(pb.MsgApp, 1, 2, 7, 3, 100), DefaultMaxFrame)
	f.Add(m)
	f.Add(controlFrame(kindPing, 42))
	f.Add(append(controlFrame(kindPong, 1), m...))
	f.Add([]byte{0, 0, 0, 9, 1, 2, 3, 4, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := frameReader{r: bytes.NewReader(data), maxFrame: 1 << 16}
		consumed := 0
		for {
			kind, group, body, err := fr.next()
			if err != nil {
				var fe *frameError
				if !errors.As(err, &fe) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if len(body) > 1<<16 {
				t.Fatalf("body of %d bytes past the limit", len(body))
			}
			re := make([]byte, frameHeader+len(body))
			copy(re[frameHeader:], body)
			sealFrame(re, kind, group)
			if !bytes.Equal(re, data[consumed:consumed+len(re)]) {
				t.Fatal("frame does not re-encode to its bytes")
			}
			consumed += len(re)
			if kind == kindMessage {
				_ = proto.Unmarshal(body, &pb.Message{}) // must not panic
			}
		}
	})
}

// FuzzHandshake: handshakes and replies decode without panicking, and
// decode(encode(x)) = x.
func FuzzHandshake(f *testing.F) {
	f.Add(hello{version: 1, lane: Bulk, sender: 1, receiver: 2, incarnation: 3, clusterID: "c"}.encode())
	f.Add(reply{version: 1, refused: true, reason: reasonDuplicate, text: "why"}.encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		if h, err := readHello(bytes.NewReader(data)); err == nil {
			h2, err := readHello(bytes.NewReader(h.encode()))
			if err != nil || h2 != h {
				t.Fatalf("hello round trip: %+v → %+v (%v)", h, h2, err)
			}
		}
		if r, err := readReply(bytes.NewReader(data)); err == nil {
			r2, err := readReply(bytes.NewReader(r.encode()))
			if err != nil || r2 != r {
				t.Fatalf("reply round trip: %+v → %+v (%v)", r, r2, err)
			}
		}
	})
}

func TestLaneOf(t *testing.T) {
	for typ, want := range map[pb.MessageType]Lane{
		pb.MsgApp: Bulk, pb.MsgSnap: Bulk,
		pb.MsgHeartbeat: Control, pb.MsgHeartbeatResp: Control, pb.MsgVote: Control, pb.MsgVoteResp: Control,
		pb.MsgPreVote: Control, pb.MsgPreVoteResp: Control, pb.MsgAppResp: Control, pb.MsgTimeoutNow: Control,
	} {
		if got := laneOf(&pb.Message{Type: typ.Enum()}); got != want {
			t.Errorf("%s on %s, want %s", typ, got, want)
		}
	}
}

// BenchmarkEncodeHeartbeat is the per-message cost Send adds to a group's
// goroutine for a small message.
func BenchmarkEncodeHeartbeat(b *testing.B) {
	m := msg(pb.MsgHeartbeat, 1, 2, 9, 100, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeMessage(9, m, DefaultMaxFrame); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLaneQueueBound: a lane's bound covers queued bytes and the batch
// being written; a full lane drops and counts, and an empty lane takes one
// frame of any size.
func TestLaneQueueBound(t *testing.T) {
	tr, err := New(Options{NodeID: 1, ClusterID: "c", Peers: map[uint64]string{2: "127.0.0.1:1"},
		Deliver: func(uint64, *pb.Message) {}, Logger: quiet(), ControlQueueBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	l := tr.peers[2].lanes[Control]
	drops := func(reason string) float64 { return value(tr.m.dropped.WithLabelValues("2", reason)) }
	frame := func(n int) []byte { return make([]byte, n) }

	l.push(frame(10))
	if drops(dropDisconnected) != 1 || len(l.frames) != 0 {
		t.Fatal("a lane that is down queued a frame")
	}
	l.setConnected(true)
	l.push(frame(60))
	l.push(frame(40))
	l.push(frame(1))
	if drops(dropQueueFull) != 1 || len(l.frames) != 2 {
		t.Fatalf("queue of %d frames after 101 bytes into a 100-byte lane", len(l.frames))
	}
	if got := len(l.take()); got != 2 {
		t.Fatalf("took %d frames", got)
	}
	l.push(frame(1)) // the batch being written still counts
	if drops(dropQueueFull) != 2 {
		t.Fatal("the bound ignored the batch in flight")
	}
	l.written()
	l.push(frame(500)) // empty: any size goes
	if len(l.frames) != 1 || value(tr.m.queueBytes.WithLabelValues("2", "control")) != 500 {
		t.Fatal("an empty lane refused a large frame")
	}
	l.setConnected(false)
	if drops(dropDisconnected) != 2 || len(l.frames) != 0 || value(tr.m.queueBytes.WithLabelValues("2", "control")) != 0 {
		t.Fatal("closing the lane did not drop what was queued")
	}
}
