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
	// extra is the owner's data, kept as the saved snapshot when the log
	// keeps snapshots (Options.Snapshots).
	extra []byte
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
	b = le.AppendUint32(b, uint32(len(m.extra)))
	b = append(b, m.extra...)
	return le.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

func decodeInstall(b []byte) (*installMarker, error) {
	le := binary.LittleEndian
	const fixed = 8 + 8*8 + 4
	if len(b) < fixed+8 || string(b[:8]) != installMagic {
		return nil, errors.New("install marker: bad magic or size")
	}
	if le.Uint32(b[len(b)-4:]) != crc32.Checksum(b[:len(b)-4], castagnoli) {
		return nil, errors.New("install marker: crc mismatch")
	}
	v := func(i int) uint64 { return le.Uint64(b[8+8*i:]) }
	m := &installMarker{index: v(0), term: v(1), nextOffset: int64(v(2)), logStart: int64(v(3)),
		hs: hardStateFrame{term: v(4), vote: v(5), commit: v(6), applied: v(7)}}
	body := b[fixed-4 : len(b)-4]
	n := int(le.Uint32(body))
	if n > len(body)-8 || n > maxConfStateBytes {
		return nil, errors.New("install marker: bad conf state length")
	}
	if n > 0 {
		m.conf = &pb.ConfState{}
		if err := proto.Unmarshal(body[4:4+n], m.conf); err != nil {
			return nil, fmt.Errorf("install marker: conf state: %w", err)
		}
	}
	body = body[4+n:]
	if x := int(le.Uint32(body)); x != len(body)-4 {
		return nil, errors.New("install marker: bad data length")
	}
	m.extra = append([]byte(nil), body[4:]...)
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
	if l.opts.Snapshots {
		m.extra = d.Extra
	}
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
	if l.opts.Snapshots {
		if err := l.writeSaved(&savedSnapshot{index: m.index, term: m.term, data: m.extra}); err != nil {
			return err
		}
	}
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

// Saved snapshots (Options.Snapshots; docs/format/snapshot.md): the file
// `snapshot` holds the owner's state at an index, so that the entries up to
// it can be deleted (CompactTo) and start-up replays only the tail.
const (
	savedMagic = "CHRNKSAV"
	savedFile  = "snapshot"
)

// ErrNotApplied refuses to save a snapshot of an index the log does not
// know to be applied yet.
var ErrNotApplied = errors.New("not applied yet")

type savedSnapshot struct {
	index, term uint64
	data        []byte
}

func (l *Log) writeSaved(sv *savedSnapshot) error {
	le := binary.LittleEndian
	b := append([]byte(nil), savedMagic...)
	b = le.AppendUint64(b, sv.index)
	b = le.AppendUint64(b, sv.term)
	b = le.AppendUint32(b, uint32(len(sv.data)))
	b = append(b, sv.data...)
	b = le.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if err := WriteFileAtomic(l.dir, savedFile, b); err != nil {
		return fmt.Errorf("save snapshot of %s: %w", l.name, err)
	}
	l.saved = sv
	return nil
}

func (l *Log) loadSaved() error {
	path := filepath.Join(l.dir, savedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if len(b) < 32 || string(b[:8]) != savedMagic || le.Uint32(b[len(b)-4:]) != crc32.Checksum(b[:len(b)-4], castagnoli) ||
		int(le.Uint32(b[24:])) != len(b)-32 {
		return l.corrupt(path, 0, "saved snapshot: bad magic, length or crc")
	}
	sv := &savedSnapshot{index: le.Uint64(b[8:]), term: le.Uint64(b[16:]), data: append([]byte(nil), b[28:len(b)-4]...)}
	if first := l.segs[0].baseIndex; sv.index+1 < first {
		return l.corrupt(path, 0, "saved snapshot at index %d, but the log starts at %d: entries in between are missing", sv.index, first)
	}
	l.saved = sv
	return nil
}

// SaveSnapshot keeps data, the owner's whole state after applying entry
// index, as the log's snapshot (Options.Snapshots). index must be applied
// and still in the log.
func (l *Log) SaveSnapshot(index uint64, data []byte) error {
	if !l.opts.Snapshots {
		return errors.New("storage: SaveSnapshot on a log without Options.Snapshots")
	}
	term, err := l.Term(index)
	if err != nil {
		return fmt.Errorf("save snapshot of %s at %d: %w", l.name, index, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if index > l.applied {
		return fmt.Errorf("save snapshot of %s at %d: %w (%d is)", l.name, index, ErrNotApplied, l.applied)
	}
	if l.saved != nil && l.saved.index >= index {
		return nil
	}
	return l.writeSaved(&savedSnapshot{index: index, term: term, data: data})
}

// Saved returns the last saved snapshot (Options.Snapshots).
func (l *Log) Saved() (index uint64, data []byte, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.saved == nil {
		return 0, nil, false
	}
	return l.saved.index, l.saved.data, true
}

// CompactTo deletes the sealed segments whose entries the saved snapshot
// covers, up to index, and returns how many.
func (l *Log) CompactTo(index uint64) (int, error) {
	l.mu.Lock()
	if l.saved == nil {
		l.mu.Unlock()
		return 0, nil
	}
	index = min(index, l.saved.index)
	l.mu.Unlock()
	return l.deleteSegments(func(*segment, int64) bool { return true }, index)
}
