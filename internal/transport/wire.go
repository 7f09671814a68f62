package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The byte formats below are specified in docs/format/transport.md.

const (
	magic           = "CHRT"
	protocolVersion = 1
	helloFixed      = 34
	replyFixed      = 10
	maxText         = 1024
	frameHeader     = 17
	// frameOverhead is what length counts besides the body (kind, group).
	frameOverhead = 9
	// DefaultMaxFrame bounds one frame's body: a receiver refuses larger
	// ones before allocating anything.
	DefaultMaxFrame = 256 << 20
)

// Lane is one of the two connections to a peer.
type Lane uint8

const (
	// Control carries heartbeats, votes and responses: small and urgent.
	Control Lane = 0
	// Bulk carries appends and snapshots: large, and never allowed to delay
	// Control.
	Bulk Lane = 1
)

const numLanes = 2

func (l Lane) String() string {
	switch l {
	case Control:
		return "control"
	case Bulk:
		return "bulk"
	}
	return fmt.Sprintf("lane%d", uint8(l))
}

// laneOf says which lane m travels on. Every MsgApp takes the bulk lane:
// spreading one group's appends over two streams would reorder them, and a
// follower rejects an append past a gap (the leader then probes again).
func laneOf(m *pb.Message) Lane {
	switch m.GetType() {
	case pb.MsgApp, pb.MsgSnap:
		return Bulk
	}
	return Control
}

// Frame kinds.
const (
	kindMessage = 1
	kindPing    = 2
	kindPong    = 3
)

// Refusal reasons of the handshake reply.
const (
	reasonNone          = 0
	reasonVersion       = 1
	reasonClusterID     = 2
	reasonUnknownSender = 3
	reasonWrongReceiver = 4
	reasonDuplicate     = 5
	reasonNotReady      = 6
	reasonBadLane       = 7
	// reasonGarbage is never sent: the connection did not speak the
	// protocol, so there is nobody to answer. It keys the log rate limit.
	reasonGarbage = 255
)

var reasonNames = map[uint8]string{
	reasonVersion:       "version",
	reasonClusterID:     "cluster_id",
	reasonUnknownSender: "unknown_sender",
	reasonWrongReceiver: "wrong_receiver",
	reasonDuplicate:     "duplicate",
	reasonNotReady:      "not_ready",
	reasonBadLane:       "bad_lane",
	reasonGarbage:       "garbage",
}

func reasonName(r uint8) string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason%d", r)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// hello is the dialer's handshake.
type hello struct {
	version     uint16
	lane        Lane
	sender      uint64
	receiver    uint64
	incarnation uint64
	clusterID   string
}

func (h hello) encode() []byte {
	id := h.clusterID
	if len(id) > maxText {
		id = id[:maxText]
	}
	b := make([]byte, helloFixed+len(id))
	copy(b, magic)
	binary.BigEndian.PutUint16(b[4:], h.version)
	b[6] = byte(h.lane)
	binary.BigEndian.PutUint64(b[8:], h.sender)
	binary.BigEndian.PutUint64(b[16:], h.receiver)
	binary.BigEndian.PutUint64(b[24:], h.incarnation)
	binary.BigEndian.PutUint16(b[32:], uint16(len(id)))
	copy(b[helloFixed:], id)
	return b
}

// errBadMagic means the peer does not speak this protocol at all.
var errBadMagic = errors.New("transport: bad magic")

func readHello(r io.Reader) (hello, error) {
	var b [helloFixed]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return hello{}, fmt.Errorf("read handshake: %w", err)
	}
	if string(b[:4]) != magic {
		return hello{}, errBadMagic
	}
	h := hello{
		version:     binary.BigEndian.Uint16(b[4:]),
		lane:        Lane(b[6]),
		sender:      binary.BigEndian.Uint64(b[8:]),
		receiver:    binary.BigEndian.Uint64(b[16:]),
		incarnation: binary.BigEndian.Uint64(b[24:]),
	}
	n := int(binary.BigEndian.Uint16(b[32:]))
	if n > maxText {
		return hello{}, fmt.Errorf("handshake: cluster id of %d bytes", n)
	}
	id := make([]byte, n)
	if _, err := io.ReadFull(r, id); err != nil {
		return hello{}, fmt.Errorf("read handshake: %w", err)
	}
	h.clusterID = string(id)
	return h, nil
}

// reply is the acceptor's answer.
type reply struct {
	version uint16
	refused bool
	reason  uint8
	text    string
}

func (r reply) encode() []byte {
	text := r.text
	if len(text) > maxText {
		text = text[:maxText]
	}
	b := make([]byte, replyFixed+len(text))
	copy(b, magic)
	binary.BigEndian.PutUint16(b[4:], r.version)
	if r.refused {
		b[6] = 1
	}
	b[7] = r.reason
	binary.BigEndian.PutUint16(b[8:], uint16(len(text)))
	copy(b[replyFixed:], text)
	return b
}

func readReply(rd io.Reader) (reply, error) {
	var b [replyFixed]byte
	if _, err := io.ReadFull(rd, b[:]); err != nil {
		return reply{}, fmt.Errorf("read handshake reply: %w", err)
	}
	if string(b[:4]) != magic {
		return reply{}, errBadMagic
	}
	r := reply{version: binary.BigEndian.Uint16(b[4:]), refused: b[6] != 0, reason: b[7]}
	n := int(binary.BigEndian.Uint16(b[8:]))
	if n > maxText {
		return reply{}, fmt.Errorf("handshake reply: text of %d bytes", n)
	}
	text := make([]byte, n)
	if _, err := io.ReadFull(rd, text); err != nil {
		return reply{}, fmt.Errorf("read handshake reply: %w", err)
	}
	r.text = string(text)
	return r, nil
}

// RefusedError is returned by a dial that the peer refused.
type RefusedError struct {
	Reason string // the reason's name, e.g. "cluster_id"
	Text   string // the peer's explanation
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("transport: refused by peer (%s): %s", e.Reason, e.Text)
}

// encodeMessage returns the frame of m in group, or an error when m does
// not marshal or exceeds maxFrame.
func encodeMessage(group uint64, m *pb.Message, maxFrame int) ([]byte, error) {
	size := proto.Size(m)
	if size > maxFrame {
		return nil, errOversize
	}
	b := make([]byte, frameHeader, frameHeader+size)
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
	if err != nil {
		return nil, fmt.Errorf("marshal message: %w", err)
	}
	sealFrame(b, kindMessage, group)
	return b, nil
}

// controlFrame returns a ping or pong frame carrying v.
func controlFrame(kind byte, v uint64) []byte {
	b := make([]byte, frameHeader+8)
	binary.BigEndian.PutUint64(b[frameHeader:], v)
	sealFrame(b, kind, 0)
	return b
}

// sealFrame fills the header of b, whose body starts at frameHeader.
func sealFrame(b []byte, kind byte, group uint64) {
	binary.BigEndian.PutUint32(b[0:], uint32(len(b)-8))
	b[8] = kind
	binary.BigEndian.PutUint64(b[9:], group)
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
}

var errOversize = errors.New("transport: message larger than the frame limit")

// frameError is a frame a receiver refuses; reason is the metric label.
type frameError struct {
	reason string
	detail string
}

func (e *frameError) Error() string { return "bad frame (" + e.reason + "): " + e.detail }

// frameReader reads frames from one connection, reusing its buffer for
// frames up to reuseLimit.
type frameReader struct {
	r        io.Reader
	maxFrame int
	buf      []byte
}

const reuseLimit = 1 << 20

// next returns the next frame's kind, group and body. The body is valid
// until the next call. It returns a *frameError for a frame that is
// damaged or not acceptable, and the read error otherwise.
func (f *frameReader) next() (kind byte, group uint64, body []byte, err error) {
	var h [8]byte
	if _, err := io.ReadFull(f.r, h[:]); err != nil {
		return 0, 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(h[0:]))
	if n < frameOverhead || n > f.maxFrame+frameOverhead {
		return 0, 0, nil, &frameError{"oversize", fmt.Sprintf("frame length %d outside [%d, %d]", n, frameOverhead, f.maxFrame+frameOverhead)}
	}
	var b []byte
	if n <= reuseLimit {
		if cap(f.buf) < n {
			// Grow by doubling: a control connection of heartbeats
			// keeps a small buffer, a bulk one settles at the limit.
			f.buf = make([]byte, min(max(n, 2*cap(f.buf), 4096), reuseLimit))
		}
		b = f.buf[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(f.r, b); err != nil {
		return 0, 0, nil, err
	}
	if got, want := crc32.Checksum(b, castagnoli), binary.BigEndian.Uint32(h[4:]); got != want {
		return 0, 0, nil, &frameError{"crc", fmt.Sprintf("crc %08x, header says %08x", got, want)}
	}
	kind = b[0]
	group = binary.BigEndian.Uint64(b[1:])
	body = b[frameOverhead:]
	switch kind {
	case kindMessage:
	case kindPing, kindPong:
		if len(body) != 8 {
			return 0, 0, nil, &frameError{"decode", fmt.Sprintf("ping/pong body of %d bytes", len(body))}
		}
	default:
		return 0, 0, nil, &frameError{"kind", fmt.Sprintf("unknown frame kind %d", kind)}
	}
	return kind, group, body, nil
}
