// Package protocol owns the Kafka wire framing around kmsg: size-prefixed
// frames, request and response headers, the table of API versions the
// broker serves, and the one map from internal errors to Kafka error codes.
// It never interprets request bodies; internal/broker does, with kmsg.
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors from reading and parsing frames. ErrFrameTooLarge and ErrMalformed
// end the connection (as Kafka does); an unsupported version of ApiVersions
// is answered (KIP-511).
var (
	ErrFrameTooLarge      = errors.New("protocol: request frame larger than socket.request.max.bytes")
	ErrMalformed          = errors.New("protocol: malformed request")
	ErrUnknownKey         = errors.New("protocol: unknown API key")
	ErrUnsupportedVersion = errors.New("protocol: unsupported API version")
)

// ReadSize reads the 4-byte size prefix of the next frame and checks it
// against max. io.EOF means the peer closed the connection between frames.
func ReadSize(r io.Reader, max int32) (int32, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	n := int32(binary.BigEndian.Uint32(b[:]))
	switch {
	case n < 8:
		return n, fmt.Errorf("%w: frame of %d bytes", ErrMalformed, n)
	case n > max:
		return n, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, max)
	}
	return n, nil
}

// Header is a parsed request header.
type Header struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      *string
	// Flexible says the header is version 2 (tagged fields), which it is
	// exactly when the request body is flexible at this version.
	Flexible bool
	// Frame is the whole request frame (without its size prefix); byte
	// slices kmsg decodes from the body alias it.
	Frame []byte
}

// ParseRequest parses the header of a request frame (without its size
// prefix) and returns the header, the kmsg request with its version set, and
// the body. The key and version are validated against the served table.
// On ErrUnknownKey and ErrUnsupportedVersion the header is still returned,
// so that the caller can answer or log with the correlation id.
func ParseRequest(frame []byte, served *Versions) (Header, kmsg.Request, []byte, error) {
	var h Header
	if len(frame) < 8 {
		return h, nil, nil, fmt.Errorf("%w: header of %d bytes", ErrMalformed, len(frame))
	}
	be := binary.BigEndian
	h.Frame = frame
	h.Key = int16(be.Uint16(frame[0:]))
	h.Version = int16(be.Uint16(frame[2:]))
	h.CorrelationID = int32(be.Uint32(frame[4:]))
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return h, nil, nil, fmt.Errorf("%w %d", ErrUnknownKey, h.Key)
	}
	if !served.Supports(h.Key, h.Version) {
		return h, nil, nil, fmt.Errorf("%w: %s v%d", ErrUnsupportedVersion, kmsg.NameForKey(h.Key), h.Version)
	}
	req.SetVersion(h.Version)
	h.Flexible = req.IsFlexible()
	rest := frame[8:]
	// client_id is a NULLABLE_STRING (int16 length) in header v1 and v2.
	if len(rest) < 2 {
		return h, nil, nil, fmt.Errorf("%w: no client id", ErrMalformed)
	}
	n := int16(be.Uint16(rest))
	rest = rest[2:]
	if n >= 0 {
		if int(n) > len(rest) {
			return h, nil, nil, fmt.Errorf("%w: client id of %d bytes with %d left", ErrMalformed, n, len(rest))
		}
		s := string(rest[:n])
		h.ClientID = &s
		rest = rest[n:]
	} else if n < -1 {
		return h, nil, nil, fmt.Errorf("%w: client id length %d", ErrMalformed, n)
	}
	if h.Flexible {
		var err error
		if rest, err = skipTags(rest); err != nil {
			return h, nil, nil, err
		}
	}
	return h, req, rest, nil
}

// WithPrefixByte returns a slice of frame holding the byte just before b
// followed by b, when b is a sub-slice of frame (as kmsg decodes byte fields
// without copying) — so that a caller can put a one-byte header in front of
// decoded bytes without copying them. The byte before b is part of b's
// length prefix, which is no longer needed once the request is decoded.
// Otherwise it returns a fresh copy with a zero first byte.
func WithPrefixByte(frame, b []byte) []byte {
	if len(b) > 0 && len(frame) > 0 {
		off := int(uintptr(unsafe.Pointer(&b[0])) - uintptr(unsafe.Pointer(&frame[0])))
		// The address check proves b lies inside frame; only then is the
		// byte before it ours to overwrite.
		if off >= 1 && off+len(b) <= len(frame) && &frame[off] == &b[0] {
			return frame[off-1 : off+len(b)]
		}
	}
	out := make([]byte, 1+len(b))
	copy(out[1:], b)
	return out
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad tag count", ErrMalformed)
	}
	b = b[k:]
	for range n {
		_, k = binary.Uvarint(b) // tag
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad tag", ErrMalformed)
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: bad tag size", ErrMalformed)
		}
		b = b[k+int(size):]
	}
	return b, nil
}

// AppendResponse appends a whole response frame (size, header, body) to dst.
// The header is version 1 (with an empty tag section) for flexible
// responses, except ApiVersions, whose response header is always version 0.
func AppendResponse(dst []byte, correlationID int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
