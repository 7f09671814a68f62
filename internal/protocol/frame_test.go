package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func servedAll() *Versions {
	v := NewVersions()
	for k := int16(0); k < 100; k++ {
		if r := kmsg.RequestForKey(k); r != nil {
			v.Add(k, 0, r.MaxVersion())
		}
	}
	return v
}

func TestParseRequestHeaders(t *testing.T) {
	var f kmsg.RequestFormatter
	id := "client-1"
	f2 := kmsg.NewRequestFormatter(kmsg.FormatterClientID(id))
	for _, tc := range []struct {
		req      kmsg.Request
		version  int16
		flexible bool
	}{
		{kmsg.NewPtrMetadataRequest(), 8, false},
		{kmsg.NewPtrMetadataRequest(), 12, true},
		{kmsg.NewPtrApiVersionsRequest(), 3, true},
		{kmsg.NewPtrProduceRequest(), 9, true},
	} {
		tc.req.SetVersion(tc.version)
		for _, fm := range []*kmsg.RequestFormatter{&f, f2} {
			b := fm.AppendRequest(nil, tc.req, 77)
			h, req, body, err := ParseRequest(b[4:], servedAll())
			if err != nil {
				t.Fatalf("%T v%d: %v", tc.req, tc.version, err)
			}
			if h.CorrelationID != 77 || h.Flexible != tc.flexible || req.GetVersion() != tc.version {
				t.Fatalf("%T v%d: header %+v", tc.req, tc.version, h)
			}
			if fm == f2 && (h.ClientID == nil || *h.ClientID != id) {
				t.Fatalf("client id %v", h.ClientID)
			}
			if err := req.ReadFrom(body); err != nil {
				t.Fatalf("%T v%d body: %v", tc.req, tc.version, err)
			}
		}
	}
	served := NewVersions()
	served.Add(3, 0, 5)
	mr := kmsg.NewPtrMetadataRequest()
	mr.SetVersion(12)
	b := f.AppendRequest(nil, mr, 1)
	if _, _, _, err := ParseRequest(b[4:], served); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("unsupported version: %v", err)
	}
}

func TestAppendResponseHeaders(t *testing.T) {
	r := kmsg.NewPtrMetadataResponse()
	r.SetVersion(12)
	b := AppendResponse(nil, 9, r)
	if int(binary.BigEndian.Uint32(b)) != len(b)-4 || binary.BigEndian.Uint32(b[4:]) != 9 || b[8] != 0 {
		t.Fatalf("flexible response header wrong: % x", b[:12])
	}
	av := kmsg.NewPtrApiVersionsResponse()
	av.SetVersion(3)
	b = AppendResponse(nil, 9, av)
	// ApiVersions keeps header v0: the error code follows the correlation id.
	if !bytes.Equal(b[8:10], []byte{0, 0}) || b[10] != 1 {
		t.Fatalf("ApiVersions response header must be v0: % x", b[:12])
	}
}

// FuzzParseRequest: any frame either fails to parse with an error or parses
// into a header and a body that kmsg reads without panicking; the parser
// never reads outside the frame.
func FuzzParseRequest(f *testing.F) {
	var fm kmsg.RequestFormatter
	for _, r := range []kmsg.Request{kmsg.NewPtrMetadataRequest(), kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrFetchRequest(), kmsg.NewPtrProduceRequest(), kmsg.NewPtrCreateTopicsRequest()} {
		for _, v := range []int16{0, 3, 9, 12} {
			if v <= r.MaxVersion() {
				r.SetVersion(v)
				f.Add(fm.AppendRequest(nil, r, 5)[4:])
			}
		}
	}
	served := servedAll()
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, req, body, err := ParseRequest(frame, served)
		if err != nil {
			return
		}
		if req.GetVersion() != h.Version || len(body) > len(frame) {
			t.Fatalf("inconsistent parse")
		}
		_ = req.ReadFrom(body)
	})
}

func TestWithPrefixByte(t *testing.T) {
	frame := []byte("xxLEN-records-tail")
	b := frame[6:13] // "records"
	got := WithPrefixByte(frame, b)
	if string(got) != "-records" || &got[1] != &frame[6] {
		t.Fatalf("got %q, sharing %v", got, &got[1] == &frame[6])
	}
	other := []byte("records")
	got = WithPrefixByte(frame, other)
	if string(got[1:]) != "records" || got[0] != 0 || &got[1] == &other[0] {
		t.Fatalf("a slice outside the frame must be copied: %q", got)
	}
	if got := WithPrefixByte(frame, frame[0:3]); &got[1] == &frame[0] {
		t.Fatal("a slice at the frame's start has no byte before it; it must be copied")
	}
}
