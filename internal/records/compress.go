package records

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec ids of the attributes' low three bits (every message format).
const (
	CodecNone   int8 = 0
	CodecGzip   int8 = 1
	CodecSnappy int8 = 2
	CodecLZ4    int8 = 3
	CodecZstd   int8 = 4
)

// ErrCodec is returned for a codec a format cannot carry (zstd in message
// format v0/v1) or that does not exist.
var ErrCodec = errors.New("records: unsupported compression codec")

// Compressors are pooled: a gzip writer allocates about 1 MiB of state.
// The pools hold no data between calls (each writer is Reset onto the
// caller's buffer), so they are caches, not shared state.
var (
	gzipWriters sync.Pool
	lz4Writers  sync.Pool
)

// xerialBlock is the block size of the snappy framing the Java client and
// broker write (xerial's SnappyOutputStream default).
const xerialBlock = 32 << 10

// Compress returns plain compressed with codec, in the framing Kafka's own
// broker writes when it (re)compresses: gzip, snappy in xerial framing,
// LZ4 frames of 64 KiB blocks, zstd frames. It is used only where the
// broker must write a batch itself: converting legacy message sets, down-
// converting for old fetchers, and a topic's compression.type.
func Compress(codec int8, plain []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch codec {
	case CodecNone:
		return plain, nil
	case CodecGzip:
		w, _ := gzipWriters.Get().(*gzip.Writer)
		if w == nil {
			w = gzip.NewWriter(&buf)
		} else {
			w.Reset(&buf)
		}
		defer gzipWriters.Put(w)
		if _, err := w.Write(plain); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	case CodecSnappy:
		buf.Write(xerialHeader)
		buf.Write([]byte{0, 0, 0, 1, 0, 0, 0, 1}) // version 1, compatible version 1
		for p := plain; len(p) > 0; {
			n := min(len(p), xerialBlock)
			blk := snappy.Encode(nil, p[:n])
			buf.Write(binary.BigEndian.AppendUint32(nil, uint32(len(blk))))
			buf.Write(blk)
			p = p[n:]
		}
	case CodecLZ4:
		w, _ := lz4Writers.Get().(*lz4.Writer)
		if w == nil {
			w = lz4.NewWriter(&buf)
			if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
				return nil, fmt.Errorf("lz4: %w", err)
			}
		} else {
			w.Reset(&buf)
		}
		defer lz4Writers.Put(w)
		if _, err := w.Write(plain); err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("lz4: %w", err)
		}
	case CodecZstd:
		w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if _, err := io.Copy(w, bytes.NewReader(plain)); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
	default:
		return nil, fmt.Errorf("%w %d", ErrCodec, codec)
	}
	return buf.Bytes(), nil
}

// lz4Frame is the magic number that opens an LZ4 frame.
const lz4Frame = 0x184D2204

// lz4HeaderChecksum rewrites the header checksum byte of an LZ4 frame. The
// checksum is the second byte of xxHash32 over the frame descriptor; Kafka
// before KIP-57 (message format v0) computed it over the magic number too,
// and every client writing v0 messages still does, so v0 frames are fixed
// up to the standard checksum before decoding (broken=false) and written
// with the old one (broken=true). A frame too short to hold a descriptor is
// left alone for the decoder to refuse.
func lz4HeaderChecksum(frame []byte, broken bool) []byte {
	if len(frame) < 7 || binary.LittleEndian.Uint32(frame) != lz4Frame {
		return frame
	}
	hc := 6 // magic, FLG, BD
	if frame[4]&0x08 != 0 {
		hc += 8 // content size
	}
	if frame[4]&0x01 != 0 {
		hc += 4 // dictionary id
	}
	if hc >= len(frame) {
		return frame
	}
	out := bytes.Clone(frame)
	from := 4
	if broken {
		from = 0
	}
	out[hc] = byte(xxh32(out[from:hc]) >> 8)
	return out
}

// xxh32 is xxHash32 with seed 0 (the LZ4 frame format's header checksum).
func xxh32(b []byte) uint32 {
	const (
		p1 uint32 = 2654435761
		p2 uint32 = 2246822519
		p3 uint32 = 3266489917
		p4 uint32 = 668265263
		p5 uint32 = 374761393
	)
	rotl := func(x uint32, r uint) uint32 { return x<<r | x>>(32-r) }
	round := func(acc, in uint32) uint32 { return rotl(acc+in*p2, 13) * p1 }
	n := uint32(len(b))
	var h uint32
	if len(b) >= 16 {
		var seed uint32 // wraps at run time, as the algorithm wants
		v1, v2, v3, v4 := seed+p1+p2, seed+p2, seed, seed-p1
		for len(b) >= 16 {
			v1 = round(v1, binary.LittleEndian.Uint32(b))
			v2 = round(v2, binary.LittleEndian.Uint32(b[4:]))
			v3 = round(v3, binary.LittleEndian.Uint32(b[8:]))
			v4 = round(v4, binary.LittleEndian.Uint32(b[12:]))
			b = b[16:]
		}
		h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)
	} else {
		h = p5
	}
	h += n
	for ; len(b) >= 4; b = b[4:] {
		h = rotl(h+binary.LittleEndian.Uint32(b)*p3, 17) * p4
	}
	for _, c := range b {
		h = rotl(h+uint32(c)*p5, 11) * p1
	}
	h ^= h >> 15
	h *= p2
	h ^= h >> 13
	h *= p3
	h ^= h >> 16
	return h
}
