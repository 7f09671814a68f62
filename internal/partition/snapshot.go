package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
)

// Snapshot layout: docs/format/producers.md.
const (
	snapshotMagic   = "CHRNKPRD"
	snapshotVersion = 1
	snapshotFile    = "producers"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeSnapshot(endOffset int64, p *Producers) []byte {
	ids := make([]int64, 0, len(p.m))
	for id := range p.m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	le := binary.LittleEndian
	b := make([]byte, 24, 24+len(ids)*(19+20*maxCachedBatches)+4)
	copy(b, snapshotMagic)
	le.PutUint16(b[8:], snapshotVersion)
	le.PutUint64(b[12:], uint64(endOffset))
	le.PutUint32(b[20:], uint32(len(ids)))
	for _, id := range ids {
		e := p.m[id]
		b = le.AppendUint64(b, uint64(id))
		b = le.AppendUint16(b, uint16(e.epoch))
		b = le.AppendUint64(b, uint64(e.lastTimestamp))
		b = append(b, byte(len(e.batches)))
		for _, x := range e.batches {
			b = le.AppendUint32(b, uint32(x.firstSeq))
			b = le.AppendUint32(b, uint32(x.lastSeq))
			b = le.AppendUint64(b, uint64(x.baseOffset))
			b = le.AppendUint32(b, uint32(x.count))
		}
	}
	return le.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeSnapshot(b []byte) (int64, *Producers, error) {
	le := binary.LittleEndian
	if len(b) < 28 || string(b[:8]) != snapshotMagic {
		return 0, nil, errors.New("producer snapshot: bad magic or size")
	}
	if le.Uint32(b[len(b)-4:]) != crc32.Checksum(b[:len(b)-4], castagnoli) {
		return 0, nil, errors.New("producer snapshot: crc mismatch")
	}
	if v := le.Uint16(b[8:]); v != snapshotVersion {
		return 0, nil, fmt.Errorf("producer snapshot: unsupported version %d", v)
	}
	end := int64(le.Uint64(b[12:]))
	n := int(le.Uint32(b[20:]))
	p := newProducers()
	rest := b[24 : len(b)-4]
	prev := int64(-1)
	for range n {
		if len(rest) < 19 {
			return 0, nil, errors.New("producer snapshot: truncated producer")
		}
		id := int64(le.Uint64(rest))
		if id <= prev {
			return 0, nil, errors.New("producer snapshot: producer ids out of order")
		}
		prev = id
		e := &producerEntry{epoch: int16(le.Uint16(rest[8:])), lastTimestamp: int64(le.Uint64(rest[10:]))}
		nb := int(rest[18])
		rest = rest[19:]
		if nb > maxCachedBatches || len(rest) < nb*20 {
			return 0, nil, errors.New("producer snapshot: bad batch count")
		}
		for range nb {
			e.batches = append(e.batches, batchMeta{
				firstSeq: int32(le.Uint32(rest)), lastSeq: int32(le.Uint32(rest[4:])),
				baseOffset: int64(le.Uint64(rest[8:])), count: int32(le.Uint32(rest[16:])),
			})
			rest = rest[20:]
		}
		p.m[id] = e
	}
	if len(rest) != 0 || end < 0 {
		return 0, nil, errors.New("producer snapshot: trailing bytes")
	}
	return end, p, nil
}
