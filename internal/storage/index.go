package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
)

// Index layouts: docs/format/index.md.
const indexEntrySize = 12

// offsetEntry is one entry of a .index file.
type offsetEntry struct {
	relIndex  uint32
	relOffset uint32
	pos       uint32
}

func putOffsetEntry(b []byte, e offsetEntry) {
	binary.LittleEndian.PutUint32(b[0:], e.relIndex)
	binary.LittleEndian.PutUint32(b[4:], e.relOffset)
	binary.LittleEndian.PutUint32(b[8:], e.pos)
}

func getOffsetEntry(b []byte) offsetEntry {
	return offsetEntry{
		relIndex:  binary.LittleEndian.Uint32(b[0:]),
		relOffset: binary.LittleEndian.Uint32(b[4:]),
		pos:       binary.LittleEndian.Uint32(b[8:]),
	}
}

// timeEntry is one entry of a .timeindex file.
type timeEntry struct {
	ts        int64
	relOffset uint32
}

func putTimeEntry(b []byte, e timeEntry) {
	binary.LittleEndian.PutUint64(b[0:], uint64(e.ts))
	binary.LittleEndian.PutUint32(b[8:], e.relOffset)
}

func getTimeEntry(b []byte) timeEntry {
	return timeEntry{ts: int64(binary.LittleEndian.Uint64(b[0:])), relOffset: binary.LittleEndian.Uint32(b[8:])}
}

// indexFile is an append-only table of 12-byte entries. Lookups read the
// file (page cache) instead of holding entries in memory, so memory does
// not grow with the log. n is guarded by the owning Log's mu; the file is
// read without it.
//
// New entries collect in a small in-memory tail (at most indexTailBytes)
// and reach the file in one pwrite when it fills, or at sync, truncate and
// close. An append to the active segment therefore costs no index syscall;
// a crash loses at most the tail, which recovery rebuilds from the segment
// after the last checkpoint (a checkpoint is written only after sync, which
// writes the tail first: docs/format/index.md).
type indexFile struct {
	path string
	f    *os.File // nil until first use for sealed segments
	n    int      // entries, in the file and in the tail

	mu      sync.RWMutex // guards tail and flushed against readers
	flushed int          // entries in the file; entries [flushed, n) are in tail
	tail    []byte
}

// indexTailBytes bounds the tail: 340 entries, one pwrite of under 4 KiB.
const indexTailBytes = 340 * indexEntrySize

func (x *indexFile) open(create bool) error {
	if x.f != nil {
		return nil
	}
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(x.path, flag, 0o644)
	if err != nil {
		return err
	}
	x.f = f
	return nil
}

func (x *indexFile) close() error {
	if x == nil || x.f == nil {
		return nil
	}
	x.mu.Lock()
	ferr := x.flushLocked()
	x.mu.Unlock()
	err := errors.Join(ferr, x.f.Close())
	x.f = nil
	return err
}

// appendRaw adds encoded entries after the n trusted ones.
func (x *indexFile) appendRaw(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.tail = append(x.tail, b...)
	x.n += len(b) / indexEntrySize
	if len(x.tail) < indexTailBytes {
		return nil
	}
	return x.flushLocked()
}

// flushLocked writes the tail to the file. mu held.
func (x *indexFile) flushLocked() error {
	if len(x.tail) == 0 {
		return nil
	}
	if err := x.open(true); err != nil {
		return err
	}
	if _, err := x.f.WriteAt(x.tail, int64(x.flushed)*indexEntrySize); err != nil {
		return fmt.Errorf("write index %s: %w", x.path, err)
	}
	x.flushed += len(x.tail) / indexEntrySize
	x.tail = x.tail[:0]
	return nil
}

// setTrusted records that the file's first n entries are valid (recovery).
func (x *indexFile) setTrusted(n int) {
	x.mu.Lock()
	x.n, x.flushed, x.tail = n, n, x.tail[:0]
	x.mu.Unlock()
}

// truncate keeps the first n entries (at recovery, n may exceed what is in
// memory: the file's first n entries are then trusted).
func (x *indexFile) truncate(n int) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.open(true); err != nil {
		return err
	}
	inTail := n > x.flushed && n <= x.n
	keep := n
	if inTail {
		keep = x.flushed
	}
	if err := x.f.Truncate(int64(keep) * indexEntrySize); err != nil {
		return fmt.Errorf("truncate index %s: %w", x.path, err)
	}
	if inTail {
		x.tail = x.tail[:(n-x.flushed)*indexEntrySize]
	} else {
		x.flushed, x.tail = n, x.tail[:0]
	}
	x.n = n
	return nil
}

// sync writes the tail and fdatasyncs the file.
func (x *indexFile) sync() error {
	x.mu.Lock()
	err := x.flushLocked()
	f := x.f
	x.mu.Unlock()
	if err != nil || f == nil {
		return err
	}
	return f.Sync()
}

// entry reads entry i.
func (x *indexFile) entry(i int) ([]byte, error) {
	x.mu.RLock()
	if i >= x.flushed {
		defer x.mu.RUnlock()
		off := (i - x.flushed) * indexEntrySize
		if off+indexEntrySize > len(x.tail) {
			return nil, fmt.Errorf("read index %s entry %d: beyond its %d entries", x.path, i, x.flushed+len(x.tail)/indexEntrySize)
		}
		var b [indexEntrySize]byte
		copy(b[:], x.tail[off:])
		return b[:], nil
	}
	x.mu.RUnlock()
	if err := x.open(false); err != nil {
		return nil, err
	}
	var b [indexEntrySize]byte
	if _, err := x.f.ReadAt(b[:], int64(i)*indexEntrySize); err != nil {
		return nil, fmt.Errorf("read index %s entry %d: %w", x.path, i, err)
	}
	return b[:], nil
}

// search returns the largest i < n with key(entry i) <= target, or -1.
// Keys must not decrease. It reads O(log n) entries.
func (x *indexFile) search(n int, target uint64, key func([]byte) uint64) (int, []byte, error) {
	if n == 0 {
		return -1, nil, nil
	}
	var firstErr error
	i := sort.Search(n, func(i int) bool {
		if firstErr != nil {
			return true
		}
		b, err := x.entry(i)
		if err != nil {
			firstErr = err
			return true
		}
		return key(b) > target
	}) - 1
	if firstErr != nil {
		return -1, nil, firstErr
	}
	if i < 0 {
		return -1, nil, nil
	}
	b, err := x.entry(i)
	return i, b, err
}

// readAll returns the raw entries of a (small) index file, for checks.
func readIndexFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	if len(b)%indexEntrySize != 0 {
		return b, errors.New("index size is not a multiple of 12")
	}
	return b, nil
}

func offsetKeyIndex(b []byte) uint64  { return uint64(binary.LittleEndian.Uint32(b[0:])) }
func offsetKeyOffset(b []byte) uint64 { return uint64(binary.LittleEndian.Uint32(b[4:])) }
func timeKey(b []byte) uint64         { return uint64(binary.LittleEndian.Uint64(b[0:])) }
