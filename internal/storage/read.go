package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// frameReader reads frames of one segment file sequentially between pos
// and end. With retain set, each refill allocates a fresh buffer so that
// returned payloads stay valid; otherwise the buffer is reused.
type frameReader struct {
	f      *os.File
	pos    int64 // file position of the next frame
	end    int64
	buf    []byte
	bufPos int64 // file position of buf[0]
	retain bool
	// corrupt, if set, turns bad bytes into a corruption report; recovery
	// leaves it nil to tell torn tails from corruption itself.
	corrupt func(file string, pos int64, err error) error
}

const readChunk = 64 << 10

// next returns the frame at r.pos. It returns io.EOF exactly at end and a
// *frameError (errShortFrame for a frame cut off by end) for bad bytes, or
// what r.corrupt makes of it.
func (r *frameReader) next() (frameHeader, []byte, error) {
	h, p, err := r.next0()
	if err != nil && r.corrupt != nil && isFrameError(err) {
		return h, nil, r.corrupt(r.f.Name(), r.pos, err)
	}
	return h, p, err
}

func (r *frameReader) next0() (frameHeader, []byte, error) {
	if r.pos >= r.end {
		return frameHeader{}, nil, io.EOF
	}
	b, err := r.window(frameHeaderSize)
	if err != nil {
		return frameHeader{}, nil, err
	}
	if len(b) < frameHeaderSize {
		return frameHeader{}, nil, errShortFrame
	}
	h, err := parseFrameHeader(b)
	if err != nil {
		return h, nil, err
	}
	if r.pos+h.size() > r.end {
		return h, nil, errShortFrame
	}
	if b, err = r.window(int(h.size())); err != nil {
		return h, nil, err
	}
	whole := b[:h.size()]
	if err := checkFrameCRC(&h, whole); err != nil {
		return h, nil, err
	}
	r.pos += h.size()
	return h, whole[frameHeaderSize:], nil
}

// window returns at least n bytes starting at r.pos (fewer only at end).
func (r *frameReader) window(n int) ([]byte, error) {
	off := r.pos - r.bufPos
	if r.buf != nil && off >= 0 && off+int64(n) <= int64(len(r.buf)) {
		return r.buf[off:], nil
	}
	size := max(n, readChunk)
	if rem := r.end - r.pos; int64(size) > rem {
		size = int(rem)
	}
	if r.retain || cap(r.buf) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	m, err := r.f.ReadAt(r.buf, r.pos)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s at %d: %w", r.f.Name(), r.pos, err)
	}
	r.buf, r.bufPos = r.buf[:m], r.pos
	return r.buf, nil
}

// isFrameError reports whether err is about the bytes, not about I/O.
func isFrameError(err error) bool {
	var fe *frameError
	return errors.As(err, &fe)
}

// findValidFrame searches [from, end) byte by byte for any complete frame
// whose header checks and whose CRC matches. Recovery uses it to tell a torn
// tail (nothing valid after the damage) from corruption in the middle.
func findValidFrame(f *os.File, from, end int64) (int64, bool, error) {
	const win = 1 << 20
	buf := make([]byte, win+frameHeaderSize)
	for start := from; start < end; start += win {
		n := min(int64(len(buf)), end-start)
		b := buf[:n]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, false, err
		}
		for i := 0; i < int(min(int64(win), n)); i++ {
			if i+frameHeaderSize > len(b) {
				break
			}
			if b[i+8] != frameMagic || b[i+9] < byte(kindEntry) || b[i+9] > byte(maxKnownFrameKind) || b[i+10] != 0 || b[i+11] != 0 {
				continue
			}
			h, err := parseFrameHeader(b[i:])
			if err != nil || start+int64(i)+h.size() > end {
				continue
			}
			whole := make([]byte, h.size())
			if _, err := f.ReadAt(whole, start+int64(i)); err != nil {
				continue
			}
			if checkFrameCRC(&h, whole) == nil {
				return start + int64(i), true, nil
			}
		}
	}
	return 0, false, nil
}
