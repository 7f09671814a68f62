// Package wal owns durability: it turns appends from many writers and many
// files into group-commit rounds of one write per file followed by one
// fdatasync per file, all of a round's fdatasyncs issued together so that the
// block layer merges them into one device cache flush.
//
// It knows nothing about what the bytes mean; internal/storage frames and
// indexes them. It must never acknowledge a write before the bytes are durable
// (unless the profile is "none") and must never return an error because it is
// busy: a full queue makes Submit wait.
package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by Submit after the committer stopped.
var ErrClosed = errors.New("wal: committer closed")

// File is an append-only file whose writes go through a Committer. Its owner
// assigns write positions; the committer writes them in submission order.
type File struct {
	f       *os.File
	path    string
	written atomic.Int64 // end of the bytes handed to the kernel
	synced  atomic.Int64 // end of the bytes known durable
	err     atomic.Pointer[error]
}

// NewFile wraps f, whose current durable size is size.
func NewFile(f *os.File, size int64) *File {
	wf := &File{f: f, path: f.Name()}
	wf.written.Store(size)
	wf.synced.Store(size)
	return wf
}

// OS returns the underlying file, for reads and for truncation by the owner
// while no write is pending.
func (f *File) OS() *os.File { return f.f }

// Path is the file's name.
func (f *File) Path() string { return f.path }

// Synced returns the length of the durable prefix of the file.
func (f *File) Synced() int64 { return f.synced.Load() }

// Written returns the length of the prefix handed to the kernel.
func (f *File) Written() int64 { return f.written.Load() }

// Err returns the sticky error of the file: once a write or sync failed, every
// later write fails with it until the owner replaces the File.
func (f *File) Err() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Reset records that the owner truncated the file to size and cleared any
// error. The owner must call it only while none of its writes are pending.
func (f *File) Reset(size int64) {
	f.written.Store(size)
	f.synced.Store(size)
	f.err.Store(nil)
}

func (f *File) fail(err error) {
	f.err.CompareAndSwap(nil, &err)
}

// Write is one append. Bufs are written at Off back to back; Done runs once
// with nil when they are durable or with the error that prevented it. Done
// runs on a committer goroutine and must not block.
type Write struct {
	File *File
	Off  int64
	Bufs [][]byte
	Size int
	Done func(error)
}

// Observer receives the committer's measurements; internal/metrics provides
// one. Methods are called from committer goroutines and must be cheap.
type Observer interface {
	// Round reports one round: writes, bytes, files written, and how long the
	// write and the fdatasync phases took.
	Round(writes, bytes, files int, write, sync time.Duration)
	// Blocked reports time a Submit spent waiting for queue space.
	Blocked(d time.Duration)
	// Failed reports a failed write or sync.
	Failed(path string, err error)
}

type nopObserver struct{}

func (nopObserver) Round(int, int, int, time.Duration, time.Duration) {}
func (nopObserver) Blocked(time.Duration)                             {}
func (nopObserver) Failed(string, error)                              {}

// Stats are cumulative counters of a committer.
type Stats struct {
	Rounds, Writes, Bytes, Syncs uint64
}

// Committer batches writes into rounds. One goroutine (Run) forms rounds;
// each round writes every file once (pwritev) and then fdatasyncs every
// written file concurrently. Writes of a file complete in submission order.
//
// A round starts as soon as the previous one finished and at least one write
// is queued. It lingers only when it holds fewer than half the writes of the
// previous round: that is the dip right after a large round completes, when
// its writers are about to submit again, and waiting a little keeps rounds
// full instead of alternating full and empty. The linger is at most as long
// as the previous round took (and never above Profile.MaxWait): a writer
// then waits no longer than one more fsync would have cost it, so closed-loop
// clients whose next write depends on this round are not stalled for the
// whole MaxWait. A lone writer never waits for a timer.
type Committer struct {
	prof     Profile
	obs      Observer
	queue    chan *Write
	inflight atomic.Int64 // Submit calls between their closed check and their send
	closed   atomic.Bool
	done     chan struct{}

	rounds, writes, bytes, syncs atomic.Uint64

	// Rounds overlap: while round n's fdatasyncs run, round n+1 is formed
	// and written, and its fdatasyncs may start; completions stay in round
	// order. slots bounds the rounds in flight; lastDone is the newest
	// round's completion (owned by the Run goroutine).
	slots    chan struct{}
	lastDone chan struct{}
}

// roundsInFlight is how many rounds may be syncing at once. Two already
// let a round's writes reach the kernel while the previous fdatasync runs;
// concurrent fdatasyncs of one file share the journal commit on ext4.
const roundsInFlight = 2

// Option configures a Committer.
type Option func(*Committer)

// WithObserver sets the measurement sink.
func WithObserver(o Observer) Option { return func(c *Committer) { c.obs = o } }

// New returns a committer for profile p. Call Run to start it.
func New(p Profile, opts ...Option) (*Committer, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Committer{prof: p, obs: nopObserver{}, queue: make(chan *Write, p.QueueDepth), done: make(chan struct{}),
		slots: make(chan struct{}, roundsInFlight)}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Profile returns the committer's profile.
func (c *Committer) Profile() Profile { return c.prof }

// Stats returns cumulative counters.
func (c *Committer) Stats() Stats {
	return Stats{Rounds: c.rounds.Load(), Writes: c.writes.Load(), Bytes: c.bytes.Load(), Syncs: c.syncs.Load()}
}

// Submit queues w. It blocks while the queue is full (backpressure) and
// returns an error only if ctx ends first or the committer is closed; in both
// cases w.Done is not called.
func (c *Committer) Submit(ctx context.Context, w *Write) error {
	c.inflight.Add(1)
	defer c.inflight.Add(-1)
	if c.closed.Load() {
		return ErrClosed
	}
	select {
	case c.queue <- w:
		return nil
	default:
	}
	start := time.Now()
	defer func() { c.obs.Blocked(time.Since(start)) }()
	select {
	case c.queue <- w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	}
}

// Run forms rounds until ctx ends, then completes every write already
// submitted and returns. Submit fails with ErrClosed afterwards.
func (c *Committer) Run(ctx context.Context) error {
	var (
		batch   []*Write
		prev    int
		lastDur time.Duration
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	for {
		var first *Write
		select {
		case first = <-c.queue:
		case <-ctx.Done():
			c.closed.Store(true)
			c.drain()
			c.waitRounds()
			close(c.done)
			return nil
		}
		batch = c.collect(batch[:0], first, prev, min(lastDur, c.prof.MaxWait), timer)
		start := time.Now()
		c.round(batch)
		lastDur = time.Since(start)
		prev = len(batch)
		clear(batch)
	}
}

// collect fills a round starting with first.
func (c *Committer) collect(batch []*Write, first *Write, prev int, linger time.Duration, timer *time.Timer) []*Write {
	batch = append(batch, first)
	size := first.Size
	full := func() bool { return len(batch) >= c.prof.MaxBatchWrites || size >= c.prof.MaxBatchBytes }
	for !full() {
		select {
		case w := <-c.queue:
			batch = append(batch, w)
			size += w.Size
			continue
		default:
		}
		break
	}
	if full() || linger <= 0 || len(batch)*2 >= prev {
		return batch
	}
	timer.Reset(linger)
	defer timer.Stop()
	for !full() && len(batch) < prev {
		select {
		case w := <-c.queue:
			batch = append(batch, w)
			size += w.Size
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// drain completes everything submitted before close.
func (c *Committer) drain() {
	var batch []*Write
	for {
		select {
		case w := <-c.queue:
			batch = append(batch, w)
			if len(batch) < c.prof.MaxBatchWrites {
				continue
			}
		default:
			if len(batch) == 0 {
				if c.inflight.Load() == 0 && len(c.queue) == 0 {
					return
				}
				time.Sleep(100 * time.Microsecond) // a Submit is between its check and its send
				continue
			}
		}
		c.round(batch)
		batch = batch[:0]
	}
}

// waitRounds waits until every round in flight has completed.
func (c *Committer) waitRounds() {
	if c.lastDone != nil {
		<-c.lastDone
	}
}

// fileRound is one file's share of a round.
type fileRound struct {
	file   *File
	writes []*Write
	err    error
	end    int64 // the file's written end after this round's writes
}

// round writes a batch (in the Run goroutine, so writes reach the kernel in
// submission order) and hands it to a goroutine that fdatasyncs its files
// and then, once the previous round has completed, completes its writes.
func (c *Committer) round(batch []*Write) {
	files := make([]*fileRound, 0, 4)
	byFile := make(map[*File]*fileRound, 4)
	total := 0
	for _, w := range batch {
		fr := byFile[w.File]
		if fr == nil {
			fr = &fileRound{file: w.File}
			byFile[w.File] = fr
			files = append(files, fr)
		}
		fr.writes = append(fr.writes, w)
		total += w.Size
	}
	n := len(batch)
	c.slots <- struct{}{}
	t0 := time.Now()
	for _, fr := range files {
		fr.err = c.writeFile(fr)
		fr.end = fr.file.written.Load()
	}
	t1 := time.Now()
	prev, done := c.lastDone, make(chan struct{})
	c.lastDone = done
	go func() {
		defer close(done)
		c.syncAll(files)
		t2 := time.Now()
		if prev != nil {
			<-prev
		}
		<-c.slots
		for _, fr := range files {
			c.complete(fr)
		}
		c.rounds.Add(1)
		c.writes.Add(uint64(n))
		c.bytes.Add(uint64(total))
		c.obs.Round(n, total, len(files), t1.Sub(t0), t2.Sub(t1))
	}()
}

// writeFile writes a file's share with as few pwritev calls as contiguity
// and IOV_MAX allow.
func (c *Committer) writeFile(fr *fileRound) error {
	f := fr.file
	if err := f.Err(); err != nil {
		return err
	}
	const iovMax = 1024
	var (
		iovs  [][]byte
		start int64 = -1
		end   int64
	)
	flush := func() error {
		for len(iovs) > 0 {
			n, err := unix.Pwritev(int(f.f.Fd()), iovs, start)
			if n > 0 {
				start += int64(n)
				iovs = advance(iovs, n)
			}
			if err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return fmt.Errorf("write %s at %d: %w", f.path, start, err)
			}
			if n == 0 && len(iovs) > 0 {
				return fmt.Errorf("write %s at %d: %w", f.path, start, errShortWrite)
			}
		}
		iovs = iovs[:0]
		return nil
	}
	for _, w := range fr.writes {
		if start >= 0 && w.Off != end {
			if err := flush(); err != nil {
				return c.failFile(f, err)
			}
			start = -1
		}
		if start < 0 {
			start, end = w.Off, w.Off
		}
		for _, b := range w.Bufs {
			if len(b) == 0 {
				continue
			}
			if len(iovs) == iovMax {
				if err := flush(); err != nil {
					return c.failFile(f, err)
				}
			}
			iovs = append(iovs, b)
		}
		end += int64(w.Size)
	}
	if err := flush(); err != nil {
		return c.failFile(f, err)
	}
	if end > f.written.Load() {
		f.written.Store(end)
	}
	return nil
}

var errShortWrite = errors.New("short write")

func (c *Committer) failFile(f *File, err error) error {
	f.fail(err)
	c.obs.Failed(f.path, err)
	return err
}

// advance drops the first n bytes from iovs.
func advance(iovs [][]byte, n int) [][]byte {
	for n > 0 && len(iovs) > 0 {
		if n >= len(iovs[0]) {
			n -= len(iovs[0])
			iovs = iovs[1:]
			continue
		}
		iovs[0] = iovs[0][n:]
		n = 0
	}
	return iovs
}

// maxSyncers bounds concurrent fdatasyncs in one round.
const maxSyncers = 64

// syncAll fdatasyncs every file of the round (concurrently when several);
// the writes are completed afterwards, in round order, by complete.
func (c *Committer) syncAll(files []*fileRound) {
	if len(files) == 1 {
		c.syncFile(files[0])
		return
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	workers := min(len(files), maxSyncers)
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				c.syncFile(files[i])
			}
		}()
	}
	wg.Wait()
}

func (c *Committer) syncFile(fr *fileRound) {
	f := fr.file
	err := fr.err
	if err == nil {
		err = f.Err()
	}
	if err == nil && c.prof.Sync {
		for {
			err = unix.Fdatasync(int(f.f.Fd()))
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		c.syncs.Add(1)
		if err != nil {
			// After a failed fdatasync the page cache may hold pages the
			// disk never got; the owner must reopen the file.
			err = c.failFile(f, fmt.Errorf("fdatasync %s: %w", f.path, err))
		}
	}
	fr.err = err
}

// complete answers a file's writes of a round, after every earlier round
// completed. A file that an earlier round failed fails this round too,
// whatever this round's own fdatasync said: after a failed fdatasync a
// later one may report success for pages that were lost.
func (c *Committer) complete(fr *fileRound) {
	f := fr.file
	err := fr.err
	if err == nil {
		err = f.Err()
	}
	if err == nil && fr.end > f.synced.Load() {
		f.synced.Store(fr.end)
	}
	for _, w := range fr.writes {
		w.Done(err)
	}
}
