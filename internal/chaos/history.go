// Package chaos records what clients did during a fault run (the history),
// checks a history for the anomalies of docs/FAULTS (lost, duplicate,
// inconsistent and non-monotonic offsets, watermark and commit regressions),
// and drives broker processes through faults for tests/chaos. The checker
// is pure: it never touches the network, the clock or a broker, so that a
// history saved from a failed run can be checked again later and the same
// verdict comes out. Format: docs/format/history.md.
package chaos

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Type is the kind of an event: an invocation or one of its three outcomes.
type Type string

// The event types.
const (
	Invoke Type = "invoke"
	OK     Type = "ok"
	Fail   Type = "fail" // certainly not applied
	Info   Type = "info" // outcome unknown (timeout, lost connection)
)

// F is the operation an event belongs to.
type F string

// The operations.
const (
	Produce   F = "produce"
	ReadOp    F = "read"
	Commit    F = "commit"
	EndOffset F = "end-offset"
	// Nemesis is the fault injector's own operation: invoke when a fault
	// (or the heal, Fault "heal") starts, ok when it is in place. It is no
	// client operation; the checker uses it for W4 windows and the report
	// for the shaded fault windows.
	Nemesis F = "nemesis"
	// Replicas is a replica comparison after the run (W8): ok with the
	// number of entries compared (Offset), fail for a divergence.
	Replicas F = "replicas"
)

// NemesisProcess is the history process of the fault injector.
const NemesisProcess = 0

// Read is one record a read returned; it encodes as [offset, value].
type Read struct {
	Offset int64
	Value  string
}

// MarshalJSON writes the pair form of docs/format/history.md.
func (r Read) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]any{r.Offset, r.Value})
}

// UnmarshalJSON reads [offset, value].
func (r *Read) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("read pair: %w", err)
	}
	if err := json.Unmarshal(raw[0], &r.Offset); err != nil {
		return fmt.Errorf("read offset: %w", err)
	}
	if err := json.Unmarshal(raw[1], &r.Value); err != nil {
		return fmt.Errorf("read value: %w", err)
	}
	return nil
}

// Event is one line of a history.
type Event struct {
	Process   int    `json:"process"`
	Type      Type   `json:"type"`
	F         F      `json:"f"`
	Time      int64  `json:"time"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Offset is a pointer because offset 0 is a real answer and must not
	// vanish under omitempty.
	Offset  *int64 `json:"offset,omitempty"`
	Value   string `json:"value,omitempty"`
	Reads   []Read `json:"reads,omitempty"`
	Session int    `json:"session,omitempty"`
	Group   string `json:"group,omitempty"`
	Error   string `json:"error,omitempty"`
	// Fault names a nemesis operation's fault (a Fault, or "heal").
	Fault string `json:"fault,omitempty"`
}

// Off returns a pointer to o, for Event.Offset.
func Off(o int64) *int64 { return &o }

func (e Event) validate() error {
	switch e.Type {
	case Invoke, OK, Fail, Info:
	default:
		return fmt.Errorf("unknown type %q", e.Type)
	}
	switch e.F {
	case Produce, ReadOp, Commit, EndOffset, Nemesis, Replicas:
	default:
		return fmt.Errorf("unknown f %q", e.F)
	}
	if e.Type == OK && e.Offset == nil && (e.F == Produce || e.F == EndOffset || e.F == Commit) {
		return fmt.Errorf("%s ok without offset", e.F)
	}
	return nil
}

// Writer appends events to a history. It is safe for concurrent use: every
// client of a run writes through one Writer, and the lock keeps lines whole.
type Writer struct {
	mu    sync.Mutex
	w     *bufio.Writer
	start time.Time
	err   error
	n     int
}

// NewWriter writes to w; times are measured from now.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriter(w), start: time.Now()}
}

// Now is the time of an event happening now (ns since the start).
func (h *Writer) Now() int64 { return int64(time.Since(h.start)) }

// Write stamps e with the current time if it has none and appends it. The
// first error sticks and is returned by every later call and by Flush.
func (h *Writer) Write(e Event) error {
	if e.Time == 0 {
		e.Time = h.Now()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return h.err
	}
	b = append(b, '\n')
	if _, err := h.w.Write(b); err != nil {
		h.err = fmt.Errorf("write history: %w", err)
		return h.err
	}
	h.n++
	return nil
}

// Len is how many events were written.
func (h *Writer) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Flush writes buffered lines to the underlying writer.
func (h *Writer) Flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return h.err
	}
	if err := h.w.Flush(); err != nil {
		h.err = fmt.Errorf("flush history: %w", err)
	}
	return h.err
}

// ErrBadHistory is wrapped by ReadHistory for a line that is not an event.
var ErrBadHistory = errors.New("bad history line")

// ReadHistory reads a whole history.
func ReadHistory(r io.Reader) ([]Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []Event
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(b, &e); err != nil {
			return out, fmt.Errorf("%w %d: %w", ErrBadHistory, line, err)
		}
		if err := e.validate(); err != nil {
			return out, fmt.Errorf("%w %d: %w", ErrBadHistory, line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}
