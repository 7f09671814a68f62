// Package powerfs is a FUSE file system for fault runs (docs/FAULTS F8,
// power loss): it passes every operation through to a backing directory,
// so the broker's storage code runs unchanged on it, but remembers, for
// every file, what was written since the file was last fsynced (the size
// it had then and the bytes each later write or truncate replaced). When
// the node "loses power" — the harness kills it with SIGKILL, then calls
// PowerLoss — those unsynced changes are undone (Drop) or left half done
// with garbage in the unsynced tail (Garble), as a disk whose volatile
// cache was lost would leave them.
//
// What it models and what it does not: file contents and sizes roll back
// to the last fsync of each file (fsync and fdatasync count alike);
// directory operations (create, rename, unlink) are kept, as a file system
// that journals its metadata would keep them. Pages are never cached by
// the kernel (direct I/O, no attribute cache), so what a restarted process
// reads is what the backing files hold. It is used only by the fault
// harness, never by the broker; it needs /dev/fuse and root.
package powerfs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Mode says what a power loss does to unsynced writes.
type Mode int

const (
	// Drop undoes every write and truncate made since the file's last
	// fsync.
	Drop Mode = iota
	// Garble undoes them too, except that a file that grew keeps a random
	// part of its unsynced tail, with one byte of it flipped: a torn
	// write that reached the disk half and wrong.
	Garble
)

func (m Mode) String() string {
	if m == Garble {
		return "garble"
	}
	return "drop"
}

// FS is one mounted power-loss file system.
type FS struct {
	backing, mnt string
	server       *fuse.Server

	// ops is held (shared) through every tracked change and (exclusive)
	// by PowerLoss, so that a write the dead process had in flight lands
	// before the undo, never after it.
	ops sync.RWMutex

	mu     sync.Mutex
	hold   chan struct{}     // non-nil while fsyncs are held (HoldSyncs)
	held   int               // fsyncs waiting on hold
	tracks map[uint64]*track // by the backing file's inode number
	rng    *rand.Rand
}

// undo is the content a write or truncate replaced.
type undo struct {
	off  int64
	data []byte
}

// track is what one backing file looked like at its last fsync.
type track struct {
	fd     *os.File // read-write, on the inode (survives renames)
	synced int64    // size at the last fsync
	undos  []undo   // replaced bytes below synced, oldest first
	dirty  bool
	wrote  int64 // bytes written since the last fsync
}

// Mount serves backing at mnt (both directories must exist) until
// Unmount. seed drives the random choices of Garble.
func Mount(backing, mnt string, seed uint64) (*FS, error) {
	f := &FS{backing: backing, mnt: mnt, tracks: map[uint64]*track{}, rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995))}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("powerfs backing %s: %w", backing, err)
	}
	root := &fs.LoopbackRoot{Path: backing, Dev: st.Dev}
	//nolint:staticcheck // NewNode is the loopback's own hook for wrapping its nodes; NodeWrapChilder needs a node to wrap from.
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, fs: f}
	}
	root.RootNode = root.NewNode(root, nil, "", &st) //nolint:staticcheck // see above
	zero := time.Duration(0)
	srv, err := fs.Mount(mnt, root.RootNode, &fs.Options{
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{FsName: "chronik-powerfs", Name: "powerfs", DisableXAttrs: true,
			// mount(2) itself, as root: no fusermount helper needed.
			DirectMount: true, DirectMountStrict: true},
	})
	if err != nil {
		return nil, fmt.Errorf("powerfs mount on %s (needs /dev/fuse and root): %w", mnt, err)
	}
	f.server = srv
	return f, nil
}

// Unmount detaches the file system and waits for its server to end; every
// process using it must be gone.
func (f *FS) Unmount() error {
	var err error
	for range 50 { // a process that just died may still hold it briefly
		if err = f.server.Unmount(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("powerfs unmount %s: %w", f.mnt, err)
	}
	f.server.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.tracks {
		_ = t.fd.Close()
	}
	f.tracks = map[uint64]*track{}
	return nil
}

// Stats says what a power loss undid.
type Stats struct {
	Files    int   // files with unsynced changes
	Written  int64 // bytes written to them since their last fsync
	Dropped  int64 // unsynced bytes appended past the synced size and lost
	Restored int64 // bytes of overwrites put back
	Garbled  int   // files left with a torn, garbled tail
	KeptTorn int64 // bytes of those tails
}

func (s Stats) String() string {
	return fmt.Sprintf("%d files with unsynced changes (%d bytes written since their last fsync): %d appended bytes dropped, %d overwritten bytes restored, %d torn tails kept (%d bytes, one byte flipped in each)",
		s.Files, s.Written, s.Dropped, s.Restored, s.Garbled, s.KeptTorn)
}

// PowerLoss undoes what no fsync made durable (see Mode). The processes
// writing to the file system must be dead (SIGKILL) first. Afterwards the
// file system is as a restarted machine would find its disk.
func (f *FS) PowerLoss(m Mode) (Stats, error) {
	f.mu.Lock()
	if f.hold != nil {
		close(f.hold) // the held fsyncs fail: the power went during them
		f.hold = nil
	}
	f.mu.Unlock()
	f.ops.Lock()
	defer f.ops.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	var st Stats
	for _, t := range f.tracks {
		if !t.dirty {
			continue
		}
		st.Files++
		st.Written += t.wrote
		size, err := fileSize(t.fd)
		if err != nil {
			return st, err
		}
		var tail []byte
		if m == Garble && size > t.synced {
			n := 1 + f.rng.Int64N(size-t.synced)
			tail = make([]byte, n)
			if _, err := t.fd.ReadAt(tail, t.synced); err != nil {
				return st, fmt.Errorf("powerfs read tail: %w", err)
			}
			tail[f.rng.IntN(len(tail))] ^= 0xff
		}
		if size > t.synced {
			st.Dropped += size - t.synced
		}
		if err := t.fd.Truncate(t.synced); err != nil {
			return st, fmt.Errorf("powerfs truncate: %w", err)
		}
		for i := len(t.undos) - 1; i >= 0; i-- {
			u := t.undos[i]
			if _, err := t.fd.WriteAt(u.data, u.off); err != nil {
				return st, fmt.Errorf("powerfs restore: %w", err)
			}
			st.Restored += int64(len(u.data))
		}
		if tail != nil {
			if _, err := t.fd.WriteAt(tail, t.synced); err != nil {
				return st, fmt.Errorf("powerfs torn tail: %w", err)
			}
			st.Garbled++
			st.KeptTorn += int64(len(tail))
			st.Dropped -= int64(len(tail))
		}
		if err := t.fd.Sync(); err != nil {
			return st, fmt.Errorf("powerfs sync: %w", err)
		}
		if t.synced, err = fileSize(t.fd); err != nil {
			return st, err
		}
		t.undos, t.dirty, t.wrote = nil, false, 0
	}
	return st, nil
}

// HoldSyncs makes every fsync from now on wait, without reaching the
// disk, until PowerLoss (which fails them): the power goes while the disk
// is flushing, so whatever the process wrote meanwhile is unsynced when it
// dies, and nothing it acknowledged after an fsync can have been written
// meanwhile. Without it a broker that fsyncs within milliseconds of every
// write rarely has anything unsynced at the instant of a kill.
func (f *FS) HoldSyncs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hold == nil {
		f.hold = make(chan struct{})
	}
}

// Held is how many fsyncs wait on HoldSyncs.
func (f *FS) Held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

// UnsyncedBytes is how many bytes were written since the last fsync of
// their file, over all files.
func (f *FS) UnsyncedBytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, t := range f.tracks {
		n += t.wrote
	}
	return n
}

// Unsynced reports how many files have changes no fsync covered.
func (f *FS) Unsynced() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.tracks {
		if t.dirty {
			n++
		}
	}
	return n
}

func fileSize(fd *os.File) (int64, error) {
	fi, err := fd.Stat()
	if err != nil {
		return 0, fmt.Errorf("powerfs stat: %w", err)
	}
	return fi.Size(), nil
}

// trackOf returns the track of the backing file at path, opening it the
// first time (its size then counts as synced: it was on disk before).
func (f *FS) trackOf(path string) (*track, error) {
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("powerfs track %s: %w", path, err)
	}
	fi, err := fd.Stat()
	if err != nil {
		_ = fd.Close()
		return nil, fmt.Errorf("powerfs track %s: %w", path, err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tracks[ino]; ok {
		_ = fd.Close()
		return t, nil
	}
	t := &track{fd: fd, synced: fi.Size()}
	f.tracks[ino] = t
	return t, nil
}

// before records what a change of [off, off+n) will replace below the
// synced size.
func (f *FS) before(t *track, off, n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t.dirty = true
	t.wrote += n
	end := min(off+n, t.synced)
	if off >= end {
		return nil
	}
	b := make([]byte, end-off)
	k, err := t.fd.ReadAt(b, off)
	if err != nil && k < len(b) {
		// A file shorter than synced (truncated earlier): the undo of
		// that truncate covers it.
		b = b[:k]
	}
	t.undos = append(t.undos, undo{off: off, data: b})
	return nil
}

func (f *FS) beforeTruncate(t *track, size int64) error {
	cur, err := fileSize(t.fd)
	if err != nil {
		return err
	}
	if size >= cur {
		f.mu.Lock()
		t.dirty = true
		f.mu.Unlock()
		return nil
	}
	return f.before(t, size, cur-size)
}

func (f *FS) synced(t *track) error {
	size, err := fileSize(t.fd)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.synced, t.undos, t.dirty, t.wrote = size, nil, false, 0
	return nil
}

// sweep forgets the files no name points to any more (unlinked, or
// replaced by a rename), closing their descriptors so that their space is
// freed: a directory operation is kept at a power loss, so there is
// nothing to undo in them.
func (f *FS) sweep() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ino, t := range f.tracks {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(t.fd.Fd()), &st); err == nil && st.Nlink > 0 {
			continue
		}
		_ = t.fd.Close()
		delete(f.tracks, ino)
	}
}

// node is a loopback node whose files are tracked.
type node struct {
	fs.LoopbackNode
	fs *FS
}

var (
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
)

// Unlink removes the name and forgets the file if that was its last name.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	errno := n.LoopbackNode.Unlink(ctx, name)
	n.fs.sweep()
	return errno
}

// Rename renames and forgets a file the new name replaced.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	n.fs.sweep()
	return errno
}

func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.EmbeddedInode().Path(nil))
}

func (n *node) wrap(fh fs.FileHandle, path string) (fs.FileHandle, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh, 0
	}
	t, err := n.fs.trackOf(path)
	if err != nil {
		_ = lf.Release(context.Background())
		return nil, fs.ToErrno(errors.Unwrap(err))
	}
	return &file{LoopbackFile: lf, fs: n.fs, t: t}, 0
}

// Open opens the backing file and tracks it; pages are never cached.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	w, errno := n.wrap(fh, n.backingPath())
	return w, fl | fuse.FOPEN_DIRECT_IO, errno
}

// Create creates the backing file and tracks it from size zero.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	w, errno := n.wrap(fh, filepath.Join(n.backingPath(), name))
	return in, w, fl | fuse.FOPEN_DIRECT_IO, errno
}

// Setattr records a truncate made by path (one made through an open file
// goes through file.Setattr).
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, isOurs := fh.(*file); isOurs {
		return n.LoopbackNode.Setattr(ctx, fh, in, out) // file.Setattr records it
	}
	n.fs.ops.RLock()
	defer n.fs.ops.RUnlock()
	if sz, ok := in.GetSize(); ok {
		t, err := n.fs.trackOf(n.backingPath())
		if err != nil {
			return fs.ToErrno(errors.Unwrap(err))
		}
		if err := n.fs.beforeTruncate(t, int64(sz)); err != nil {
			return syscall.EIO
		}
	}
	return n.LoopbackNode.Setattr(ctx, fh, in, out)
}

// file is a tracked loopback file.
type file struct {
	*fs.LoopbackFile
	fs *FS
	t  *track
}

// PassthroughFd refuses kernel passthrough: every write must reach us.
func (f *file) PassthroughFd() (int, bool) { return 0, false }

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f.fs.ops.RLock()
	defer f.fs.ops.RUnlock()
	if err := f.fs.before(f.t, off, int64(len(data))); err != nil {
		return 0, syscall.EIO
	}
	return f.LoopbackFile.Write(ctx, data, off)
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	f.fs.ops.RLock()
	defer f.fs.ops.RUnlock()
	var n int64
	for _, d := range data {
		n += int64(len(d))
	}
	if err := f.fs.before(f.t, off, n); err != nil {
		return 0, syscall.EIO
	}
	return f.LoopbackFile.Writev(ctx, data, off)
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	f.fs.mu.Lock()
	hold := f.fs.hold
	f.fs.mu.Unlock()
	if hold != nil {
		f.fs.mu.Lock()
		f.fs.held++
		f.fs.mu.Unlock()
		// A process killed in a request the server holds cannot exit
		// until it is answered: the kernel's interrupt (ctx) ends it.
		select {
		case <-hold:
		case <-ctx.Done():
		}
		f.fs.mu.Lock()
		f.fs.held--
		f.fs.mu.Unlock()
		return syscall.EIO
	}
	f.fs.ops.RLock()
	defer f.fs.ops.RUnlock()
	if errno := f.LoopbackFile.Fsync(ctx, flags); errno != 0 {
		return errno
	}
	if err := f.fs.synced(f.t); err != nil {
		return syscall.EIO
	}
	return 0
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f.fs.ops.RLock()
	defer f.fs.ops.RUnlock()
	if sz, ok := in.GetSize(); ok {
		if err := f.fs.beforeTruncate(f.t, int64(sz)); err != nil {
			return syscall.EIO
		}
	}
	return f.LoopbackFile.Setattr(ctx, in, out)
}

func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	f.fs.ops.RLock()
	defer f.fs.ops.RUnlock()
	f.fs.mu.Lock()
	f.t.dirty = true // a size change; the truncate at power loss undoes it
	f.fs.mu.Unlock()
	return f.LoopbackFile.Allocate(ctx, off, size, mode)
}
