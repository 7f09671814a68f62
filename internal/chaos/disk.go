package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/chronik-go/chronik/internal/powerfs"
)

// mountExt4 makes a fresh ext4 file system of sizeMB in the image file and
// mounts it on dir (loop device), for a node whose disk can really fill
// up (F10). It needs root and e2fsprogs and says so when they are missing.
func mountExt4(img, dir string, sizeMB int) error {
	run := func(name string, args ...string) error {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %w: %s (the disk-full fault needs root, mount and e2fsprogs)", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	if err := run("truncate", "-s", fmt.Sprintf("%dM", sizeMB), img); err != nil {
		return err
	}
	if err := run("mkfs.ext4", "-q", "-F", img); err != nil {
		return err
	}
	return run("mount", "-o", "loop", img, dir)
}

// unmount detaches a file system mounted by mountExt4 (lazily, so a file
// still open somewhere does not keep it).
func unmount(dir string) {
	_ = exec.Command("umount", "-l", dir).Run()
}

// fillName is the file that takes a node's free space away.
const fillName = ".chaos-fill"

// fill writes zeros into dir's file system until it is full (ENOSPC) and
// returns how much it wrote.
func fill(dir string) (int64, error) {
	f, err := os.OpenFile(filepath.Join(dir, fillName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("fill: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("fill: %w", err)
		}
	}
	// Smaller writes take the last partial blocks too.
	for _, sz := range []int{64 << 10, 4 << 10, 512} {
		for {
			k, err := f.Write(buf[:sz])
			n += int64(k)
			if err != nil {
				break
			}
		}
	}
	_ = f.Sync() // may itself fail with ENOSPC: the file is full either way
	return n, nil
}

// lastError is the last ERROR line a node logged (cut to 300 bytes).
func lastError(log string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "level=ERROR") {
			l := lines[i]
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			return l
		}
	}
	return "no ERROR line"
}

// unfill removes the filler.
func unfill(dir string) error {
	if err := os.Remove(filepath.Join(dir, fillName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unfill: %w", err)
	}
	return nil
}

// readyz returns a node's /readyz status and body ("" and the error when it
// does not answer).
func readyz(ctx context.Context, nd *Node) (int, string, error) {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nd.Metrics+"/readyz", http.NoBody)
	if err != nil {
		return 0, "", fmt.Errorf("readyz: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("readyz: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// diskFull (F10) fills the file system of one node's data directory for
// the hold, then frees it. The node must fail visibly (exit, or report not
// ready) while the others keep serving; at the heal a node that exited is
// restarted and one that still runs but is not ready is restarted cleanly,
// as an operator would after freeing space.
func (r *runner) diskFull(ctx context.Context, s step) error {
	c := r.cluster
	nd, what, err := r.target(ctx, s, s.pick%2 == 0)
	if err != nil {
		return err
	}
	hold := s.hold.Round(time.Millisecond)
	var wrote int64
	if err := r.nemesis(s.fault, fmt.Sprintf("fill the disk of %s for %v", what, hold), func() error {
		wrote, err = fill(nd.Dir)
		return err
	}); err != nil {
		return err
	}
	r.logf("%s: wrote %d MiB of filler", s.fault, wrote>>20)
	if err := sleep(ctx, s.hold); err != nil {
		return err
	}
	var state string
	if !nd.Running() {
		state = "exited: " + lastError(nd.Output())
	} else if code, body, err := readyz(ctx, nd); err != nil {
		state = "running, /readyz does not answer"
	} else {
		state = fmt.Sprintf("running, /readyz %d %s", code, strings.Join(strings.Fields(body), " "))
	}
	r.logf("%s: node %d after %v of a full disk: %s", s.fault, nd.ID, hold, state)
	return r.nemesisOp(Heal, fmt.Sprintf("free the disk of node %d (%s)", nd.ID, state), func() error {
		if err := unfill(nd.Dir); err != nil {
			return err
		}
		if nd.Running() {
			if code, _, err := readyz(ctx, nd); err == nil && code == http.StatusOK {
				return nil
			}
			if err := c.Term(nd); err != nil {
				r.logf("%s: %v", s.fault, err)
			}
		}
		return c.Restart(ctx, nd)
	})
}

// powerLoss (F8) kills a node with SIGKILL and then undoes every write its
// file system had not fsynced (or leaves a torn, garbled tail: the pick
// decides), as a machine losing power would; after the hold the node
// restarts on what is left. Every acknowledged record must survive: the
// broker answers acks only after the fsync (W5 on a standalone broker).
func (r *runner) powerLoss(ctx context.Context, s step) error {
	c := r.cluster
	nd, what, err := r.target(ctx, s, s.pick%2 == 0)
	if err != nil {
		return err
	}
	if nd.Power == nil {
		return fmt.Errorf("%s needs the power-loss file system", s.fault)
	}
	mode := powerfs.Drop
	if s.pick/2%2 == 1 {
		mode = powerfs.Garble
	}
	// Most of the time the power goes while an fsync is under way (held
	// until the power loss), so that there are unsynced writes to lose:
	// the broker fsyncs within milliseconds of writing, and a kill at a
	// random instant seldom finds any.
	during := s.pick/4%4 != 0
	when := "at a random instant"
	if during {
		when = "during an fsync"
	}
	var st powerfs.Stats
	if err := r.nemesis(s.fault, fmt.Sprintf("power loss of %s %s (unsynced writes: %s), down %v", what, when, mode, s.hold.Round(time.Millisecond)), func() error {
		if during {
			nd.Power.HoldSyncs()
			deadline := time.Now().Add(2 * time.Second)
			for nd.Power.Held() == 0 || nd.Power.UnsyncedBytes() == 0 {
				if time.Now().After(deadline) {
					break
				}
				if err := sleep(ctx, 5*time.Millisecond); err != nil {
					return err
				}
			}
		}
		c.Kill(nd)
		st, err = nd.Power.PowerLoss(mode)
		return err
	}); err != nil {
		return err
	}
	r.logf("%s: node %d: %v", s.fault, nd.ID, st)
	if err := sleep(ctx, s.hold); err != nil {
		return err
	}
	return r.restart(ctx, nd)
}

// bitFlip (F9) stops a node cleanly, flips eight bytes at a random place
// of one of its segments of the drawn partition, and starts it again. The
// damaged replica must not serve or spread what it lost (no acknowledged
// record lost, replicas equal after the run); at the heal, a node that
// reports the partition offline gets the documented operator repair: stop
// it, remove the partition's directory, start it, and let Raft rebuild the
// replica from the others.
func (r *runner) bitFlip(ctx context.Context, s step) error {
	c := r.cluster
	nd, what, err := r.target(ctx, s, s.pick%2 == 0)
	if err != nil {
		return err
	}
	dir := filepath.Join(nd.Dir, "logs", fmt.Sprintf("%s-%d", r.topic, s.partition))
	var where string
	if err := r.nemesis(s.fault, fmt.Sprintf("stop %s, flip 8 bytes of a segment of %s-%d, start it", what, r.topic, s.partition), func() error {
		if err := c.Term(nd); err != nil {
			return err
		}
		if where, err = flipSegment(dir, uint64(s.pick)); err != nil {
			return err
		}
		return c.Restart(ctx, nd)
	}); err != nil {
		return err
	}
	r.logf("%s: node %d: %s", s.fault, nd.ID, where)
	if err := sleep(ctx, s.hold); err != nil {
		return err
	}
	code, body, err := readyz(ctx, nd)
	state := fmt.Sprintf("/readyz %d %s", code, strings.Join(strings.Fields(body), " "))
	if err != nil {
		state = err.Error()
	}
	r.logf("%s: node %d after %v: %s", s.fault, nd.ID, s.hold.Round(time.Millisecond), state)
	if err == nil && code == http.StatusOK {
		return r.nemesisOp(Heal, fmt.Sprintf("node %d serves (%s)", nd.ID, state), func() error { return nil })
	}
	return r.nemesisOp(Heal, fmt.Sprintf("repair node %d: stop, remove %s, start (%s)", nd.ID, filepath.Base(dir), state), func() error {
		if err := c.Term(nd); err != nil {
			return err
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		return c.Restart(ctx, nd)
	})
}

// flipSegment inverts eight bytes at a place drawn from seed in one of the
// segment files (*.log) of dir, and says where.
func flipSegment(dir string, seed uint64) (string, error) {
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return "", fmt.Errorf("flip: %w", err)
	}
	if len(segs) == 0 {
		return "", fmt.Errorf("flip: no segment in %s", dir)
	}
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	seg := segs[rng.IntN(len(segs))]
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("flip: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("flip: %w", err)
	}
	if fi.Size() < 64 {
		return "", fmt.Errorf("flip: %s holds only %d bytes", seg, fi.Size())
	}
	pos := rng.Int64N(fi.Size() - 8)
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, pos); err != nil {
		return "", fmt.Errorf("flip: %w", err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, pos); err != nil {
		return "", fmt.Errorf("flip: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("flip: %w", err)
	}
	return fmt.Sprintf("flipped 8 bytes at %d of %s (%d bytes)", pos, filepath.Base(seg), fi.Size()), nil
}
