package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/chronik-go/chronik/internal/wal"
)

// Segment header layout: docs/format/segment.md.
const (
	segmentHeaderSize = 64
	segmentMagic      = "CHRNKSEG"
	segmentVersion    = 1
	segmentExt        = ".log"
	indexExt          = ".index"
	timeIndexExt      = ".timeindex"
	// maxSegmentBytes keeps every position and relative value in 32 bits
	// even after one append overshoots segment.bytes.
	maxSegmentBytes = 1<<31 - 1
)

type segmentHeader struct {
	baseIndex  uint64
	baseOffset int64
	prevTerm   uint64
	createdMs  int64
}

func encodeSegmentHeader(h segmentHeader) []byte {
	b := make([]byte, segmentHeaderSize)
	copy(b, segmentMagic)
	binary.LittleEndian.PutUint16(b[8:], segmentVersion)
	binary.LittleEndian.PutUint32(b[12:], segmentHeaderSize)
	binary.LittleEndian.PutUint64(b[16:], h.baseIndex)
	binary.LittleEndian.PutUint64(b[24:], uint64(h.baseOffset))
	binary.LittleEndian.PutUint64(b[32:], h.prevTerm)
	binary.LittleEndian.PutUint64(b[40:], uint64(h.createdMs))
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

func decodeSegmentHeader(b []byte) (segmentHeader, error) {
	var h segmentHeader
	switch {
	case len(b) < segmentHeaderSize:
		return h, fmt.Errorf("segment header: %d bytes, want %d", len(b), segmentHeaderSize)
	case string(b[:8]) != segmentMagic:
		return h, errors.New("segment header: bad magic")
	case binary.LittleEndian.Uint32(b[60:]) != crc32.Checksum(b[:60], castagnoli):
		return h, errors.New("segment header: crc mismatch")
	case binary.LittleEndian.Uint16(b[8:]) != segmentVersion:
		return h, fmt.Errorf("segment header: unsupported version %d", binary.LittleEndian.Uint16(b[8:]))
	case binary.LittleEndian.Uint32(b[12:]) != segmentHeaderSize:
		return h, errors.New("segment header: bad header length")
	}
	h.baseIndex = binary.LittleEndian.Uint64(b[16:])
	h.baseOffset = int64(binary.LittleEndian.Uint64(b[24:]))
	h.prevTerm = binary.LittleEndian.Uint64(b[32:])
	h.createdMs = int64(binary.LittleEndian.Uint64(b[40:]))
	if h.baseIndex == 0 || h.baseOffset < 0 {
		return h, errors.New("segment header: invalid base index or offset")
	}
	return h, nil
}

// segmentName is the file stem for a segment with the given base index.
func segmentName(base uint64) string { return fmt.Sprintf("%020d", base) }

// parseSegmentName returns the base index encoded in a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	stem, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(stem, 10, 64)
	return v, err == nil && v > 0
}

// segment is one segment file with its two indexes. Fields set at open or
// creation are immutable; the rest is guarded by the owning Log's mu.
type segment struct {
	segmentHeader
	stem string // path without extension

	// lastIndex and endOffset are the last Raft index and the end Kafka
	// offset stored in the segment (lastIndex = baseIndex-1 when empty).
	lastIndex uint64
	endOffset int64
	// maxTs is the largest timestamp in the segment (-1 if none).
	maxTs int64
	// size is the number of bytes submitted to the file (header included).
	size   int64
	sealed bool

	idx, tidx *indexFile

	// active segments write through the committer.
	wf *wal.File

	mu sync.Mutex // guards rf
	rf *os.File   // read handle, opened lazily for sealed segments
}

func (s *segment) path(ext string) string { return s.stem + ext }

// reader returns a handle to read the segment file.
func (s *segment) reader() (*os.File, error) {
	if s.wf != nil {
		return s.wf.OS(), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rf == nil {
		f, err := os.Open(s.path(segmentExt))
		if err != nil {
			return nil, err
		}
		s.rf = f
	}
	return s.rf, nil
}

// close releases the segment's files.
func (s *segment) close() error {
	var errs []error
	if s.wf != nil {
		errs = append(errs, s.wf.OS().Close())
	}
	s.mu.Lock()
	if s.rf != nil {
		errs = append(errs, s.rf.Close())
		s.rf = nil
	}
	s.mu.Unlock()
	errs = append(errs, s.idx.close(), s.tidx.close())
	return errors.Join(errs...)
}

// remove deletes the segment's files.
func (s *segment) remove() error {
	err := s.close()
	for _, ext := range []string{segmentExt, indexExt, timeIndexExt} {
		if e := os.Remove(s.path(ext)); e != nil && !errors.Is(e, os.ErrNotExist) {
			err = errors.Join(err, e)
		}
	}
	return err
}

func segmentStem(dir string, base uint64) string { return filepath.Join(dir, segmentName(base)) }
