package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Snapshots (docs/format/snapshot.md). A log's snapshot is its compaction
// point: the entry before the first segment. Its data says where the Kafka
// offsets continue and where the log starts, followed by what the log's
// owner adds (SetSnapshotData: a partition's producer state).
const (
	snapshotDataMagic = "CHRNKSNP"
	installMagic      = "CHRNKINS"
	installFile       = "install"
)

// SnapshotData is what a snapshot carries besides its index and term.
type SnapshotData struct {
	// NextOffset is the Kafka offset of the first entry after the snapshot.
	NextOffset int64
	// LogStart is the log start offset (>= NextOffset, or -1 for none).
	LogStart int64
	// Extra is the owner's state machine data (SetSnapshotData).
	Extra []byte
}

// EncodeSnapshotData frames d: magic, next offset, log start, extra, CRC-32C.
func EncodeSnapshotData(d SnapshotData) []byte {
	le := binary.LittleEndian
	b := make([]byte, 0, 8+8+8+4+len(d.Extra)+4)
	b = append(b, snapshotDataMagic...)
	b = le.AppendUint64(b, uint64(d.NextOffset))
	b = le.AppendUint64(b, uint64(d.LogStart))
	b = le.AppendUint32(b, uint32(len(d.Extra)))
	b = append(b, d.Extra...)
	return le.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeSnapshotData reverses EncodeSnapshotData.
func DecodeSnapshotData(b []byte) (SnapshotData, error) {
	le := binary.LittleEndian
	if len(b) < 32 || string(b[:8]) != snapshotDataMagic {
		return SnapshotData{}, errors.New("snapshot data: bad magic or size")
	}
	if le.Uint32(b[len(b)-4:]) != crc32.Checksum(b[:len(b)-4], castagnoli) {
		return SnapshotData{}, errors.New("snapshot data: crc mismatch")
	}
	d := SnapshotData{NextOffset: int64(le.Uint64(b[8:])), LogStart: int64(le.Uint64(b[16:]))}
	n := int(le.Uint32(b[24:]))
	if n != len(b)-32 || d.NextOffset < 0 {
		return SnapshotData{}, errors.New("snapshot data: bad length")
	}
	d.Extra = append([]byte(nil), b[28:28+n]...)
	return d, nil
}

// SetSnapshotData sets where Snapshot takes the owner's state machine data
// from. fn runs on whatever goroutine calls Snapshot (Raft's, for a group
// driven by raftlog), without the log's lock.
func (l *Log) SetSnapshotData(fn func() ([]byte, error)) {
	l.mu.Lock()
	l.snapData = fn
	l.mu.Unlock()
}

// installMarker is the state a snapshot install leaves the log in; it is
// written before anything is removed, so recovery can finish the install.
type installMarker struct {
	index, term          uint64
	nextOffset, logStart int64
	hs                   hardStateFrame
	conf                 *pb.ConfState
}

func encodeInstall(m *installMarker) ([]byte, error) {
	var conf []byte
	if m.conf != nil {
		var err error
		if conf, err = proto.Marshal(m.conf); err != nil {
			return nil, err
		}
	}
	le := binary.LittleEndian
	b := append([]byte(nil), installMagic...)
	for _, v := range []uint64{m.index, m.term, uint64(m.nextOffset), uint64(m.logStart), m.hs.term, m.hs.vote, m.hs.commit, m.hs.applied} {
		b = le.AppendUint64(b, v)
	}
	b = le.AppendUint32(b, uint32(len(conf)))
	b = append(b, conf...)
	return le.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

func decodeInstall(b []byte) (*installMarker, error) {
	le := binary.LittleEndian
	const fixed = 8 + 8*8 + 4
	if len(b) < fixed+4 || string(b[:8]) != installMagic {
		return nil, errors.New("install marker: bad magic or size")
	}
	if le.Uint32(b[len(b)-4:]) != crc32.Checksum(b[:len(b)-4], castagnoli) {
		return nil, errors.New("install marker: crc mismatch")
	}
	v := func(i int) uint64 { return le.Uint64(b[8+8*i:]) }
	m := &installMarker{index: v(0), term: v(1), nextOffset: int64(v(2)), logStart: int64(v(3)),
		hs: hardStateFrame{term: v(4), vote: v(5), commit: v(6), applied: v(7)}}
	n := int(le.Uint32(b[fixed-4:]))
	if n != len(b)-fixed-4 || n > maxConfStateBytes {
		return nil, errors.New("install marker: bad conf state length")
	}
	if n > 0 {
		m.conf = &pb.ConfState{}
		if err := proto.Unmarshal(b[fixed:fixed+n], m.conf); err != nil {
			return nil, fmt.Errorf("install marker: conf state: %w", err)
		}
	}
	return m, nil
}

// InstallSnapshot replaces the log with an empty one that continues after
// a leader's snapshot: index and term of its last entry, the membership at
// it, and where Kafka offsets continue and the log starts. Everything the
// log held is discarded — Raft sends a snapshot only when this log cannot
// continue the leader's — and the hard state keeps its term and vote with
// the commit and applied index moved up to the snapshot. It is crash-safe:
// the target state goes to a marker file first, and Open finishes an
// install it finds interrupted.
func (l *Log) InstallSnapshot(index, term uint64, cs *pb.ConfState, d SnapshotData) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usable(); err != nil {
		return err
	}
	l.waitIdle()
	hs := l.cur.hs
	hs.term = max(hs.term, term)
	hs.commit = max(hs.commit, index)
	hs.applied = index
	m := &installMarker{index: index, term: term, nextOffset: d.NextOffset, logStart: d.LogStart, hs: hs, conf: cs}
	b, err := encodeInstall(m)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(l.dir, installFile, b); err != nil {
		l.failLocked(fmt.Errorf("install snapshot: %w", err))
		return l.failed
	}
	if err := l.finishInstall(m); err != nil {
		l.failLocked(fmt.Errorf("install snapshot: %w", err))
		return l.failed
	}
	l.log.Info("installed a snapshot", "index", index, "term", term, "next_offset", d.NextOffset, "log_start", d.LogStart)
	return nil
}

// finishInstall removes every segment and the checkpoint, creates the
// first segment after the snapshot and removes the marker. mu held (or
// during Open).
func (l *Log) finishInstall(m *installMarker) error {
	for _, s := range l.segs {
		_ = s.close()
	}
	l.segs = nil
	names, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	for _, e := range names {
		n := e.Name()
		stem := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, segmentExt), indexExt), timeIndexExt)
		if _, seg := parseSegmentName(stem + segmentExt); seg || n == checkpointFile {
			if err := os.Remove(filepath.Join(l.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	st := tailState{lastIndex: m.index, lastTerm: m.term, endOffset: m.nextOffset, hs: m.hs, logStart: m.logStart,
		confIndex: m.index, conf: m.conf, maxTs: -1, timeIndexLast: -1}
	if m.conf == nil {
		st.confIndex = 0
	}
	seg, err := l.createSegment(&st)
	if err != nil {
		return err
	}
	l.segs = []*segment{seg}
	l.cur, l.durable = st, st
	l.hsDirty = false
	l.terms = termRuns{}
	l.cache.reset()
	l.applied = m.index
	if err := os.Remove(filepath.Join(l.dir, installFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	return l.checkpointLocked()
}

// resumeInstall finishes an install that a crash interrupted (Open).
func (l *Log) resumeInstall() (bool, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, installFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	m, err := decodeInstall(b)
	if err != nil {
		return false, l.corrupt(filepath.Join(l.dir, installFile), 0, "%v", err)
	}
	l.log.Warn("finishing a snapshot install that was interrupted", "index", m.index)
	return true, l.finishInstall(m)
}
