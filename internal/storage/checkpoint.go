package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Checkpoint layout: docs/format/checkpoint.md.
const (
	checkpointMagic   = "CHRNKCKP"
	checkpointVersion = 1
	checkpointFile    = "checkpoint"
	checkpointFixed   = 8 + 4 + 4 + 4 + 8 + 8 + 8 + 8 + 8 + 4 + 8 + 24 + 8 + 8 + 8 + 4
	maxConfStateBytes = 1 << 20
)

// tailState is everything recovery needs to continue scanning the last
// segment at pos: the state of the log just before that position.
type tailState struct {
	segBase       uint64
	pos           int64
	idxEntries    int
	tidxEntries   int
	lastIndex     uint64
	lastTerm      uint64
	endOffset     int64
	maxTs         int64
	maxTsRel      uint32
	sinceIndex    int64
	timeIndexLast int64
	hs            hardStateFrame
	logStart      int64
	confIndex     uint64
	conf          *pb.ConfState
}

func encodeCheckpoint(t *tailState) ([]byte, error) {
	var conf []byte
	if t.conf != nil {
		var err error
		if conf, err = proto.Marshal(t.conf); err != nil {
			return nil, fmt.Errorf("encode conf state: %w", err)
		}
	}
	n := checkpointFixed + len(conf)
	b := make([]byte, 16+n+4)
	copy(b, checkpointMagic)
	le := binary.LittleEndian
	le.PutUint16(b[8:], checkpointVersion)
	le.PutUint32(b[12:], uint32(n))
	p := b[16:]
	put64 := func(v uint64) { le.PutUint64(p, v); p = p[8:] }
	put32 := func(v uint32) { le.PutUint32(p, v); p = p[4:] }
	put64(t.segBase)
	put32(uint32(t.pos))
	put32(uint32(t.idxEntries))
	put32(uint32(t.tidxEntries))
	put64(t.lastIndex)
	put64(t.lastTerm)
	put64(uint64(t.endOffset))
	put64(uint64(t.maxTs))
	put64(uint64(t.maxTsRel))
	put32(uint32(t.sinceIndex))
	put64(uint64(t.timeIndexLast))
	put64(t.hs.term)
	put64(t.hs.vote)
	put64(t.hs.commit)
	put64(t.hs.applied)
	put64(uint64(t.logStart))
	put64(t.confIndex)
	put32(uint32(len(conf)))
	copy(p, conf)
	le.PutUint32(b[16+n:], crc32.Checksum(b[:16+n], castagnoli))
	return b, nil
}

func decodeCheckpoint(b []byte) (*tailState, error) {
	le := binary.LittleEndian
	if len(b) < 16+checkpointFixed+4 {
		return nil, errors.New("checkpoint: too short")
	}
	if string(b[:8]) != checkpointMagic {
		return nil, errors.New("checkpoint: bad magic")
	}
	if v := le.Uint16(b[8:]); v != checkpointVersion {
		return nil, fmt.Errorf("checkpoint: unsupported version %d", v)
	}
	n := int(le.Uint32(b[12:]))
	if n < checkpointFixed || n > checkpointFixed+maxConfStateBytes || len(b) != 16+n+4 {
		return nil, errors.New("checkpoint: bad length")
	}
	if le.Uint32(b[16+n:]) != crc32.Checksum(b[:16+n], castagnoli) {
		return nil, errors.New("checkpoint: crc mismatch")
	}
	p := b[16 : 16+n]
	get64 := func() uint64 { v := le.Uint64(p); p = p[8:]; return v }
	get32 := func() uint32 { v := le.Uint32(p); p = p[4:]; return v }
	t := &tailState{}
	t.segBase = get64()
	t.pos = int64(get32())
	t.idxEntries = int(get32())
	t.tidxEntries = int(get32())
	t.lastIndex = get64()
	t.lastTerm = get64()
	t.endOffset = int64(get64())
	t.maxTs = int64(get64())
	t.maxTsRel = uint32(get64())
	t.sinceIndex = int64(get32())
	t.timeIndexLast = int64(get64())
	t.hs.term = get64()
	t.hs.vote = get64()
	t.hs.commit = get64()
	t.hs.applied = get64()
	t.logStart = int64(get64())
	t.confIndex = get64()
	cl := int(get32())
	if cl != len(p) {
		return nil, errors.New("checkpoint: bad conf state length")
	}
	if cl > 0 {
		t.conf = &pb.ConfState{}
		if err := proto.Unmarshal(p, t.conf); err != nil {
			return nil, fmt.Errorf("checkpoint: conf state: %w", err)
		}
	}
	if t.pos < segmentHeaderSize || t.segBase == 0 || t.lastIndex+1 < t.segBase || t.endOffset < 0 {
		return nil, errors.New("checkpoint: inconsistent values")
	}
	return t, nil
}

// WriteFileAtomic replaces dir/name with b durably: temp file, fsync,
// rename, directory fsync.
func WriteFileAtomic(dir, name string, b []byte) error {
	if err := writeTemp(dir, name+".tmp", b); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, name+".tmp"), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeTemp writes b to dir/tmp and fsyncs it.
func writeTemp(dir, tmp string, b []byte) error {
	f, err := os.OpenFile(filepath.Join(dir, tmp), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
