package records

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is a record to put in a batch the broker builds itself.
type Record struct {
	Key, Value []byte
	Headers    []kmsg.Header
}

// Build returns an uncompressed v2 batch holding recs, with timestamps ts,
// ts+1, ..., no producer id, and a valid CRC. The broker uses it for the
// batches it writes itself; tests use it as a producer would.
func Build(base int64, ts int64, recs []Record) []byte {
	var body []byte
	for i, r := range recs {
		kr := kmsg.Record{OffsetDelta: int32(i), TimestampDelta: int32(i), Key: r.Key, Value: r.Value, Headers: r.Headers}
		kr.Length = recordLength(&kr)
		body = kr.AppendTo(body)
	}
	b := kmsg.RecordBatch{
		FirstOffset: base, Magic: 2, LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: ts, MaxTimestamp: ts + int64(len(recs)-1),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: body,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[offBatchLength:], uint32(len(out)-lengthOverhead))
	SetCRC(out)
	return out
}

// recordLength is the encoded size of a record after its length varint.
func recordLength(r *kmsg.Record) int32 {
	r.Length = 0
	n := len(r.AppendTo(nil)) - 1 // a zero length is one varint byte
	return int32(n)
}
