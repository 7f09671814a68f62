package powerfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mount serves a fresh backing directory; it fails (never skips) without
// /dev/fuse or root.
func mount(t *testing.T) (*FS, string) {
	t.Helper()
	backing, mnt := t.TempDir(), t.TempDir()
	f, err := Mount(backing, mnt, 7)
	if err != nil {
		t.Fatalf("%v (powerfs tests need root and /dev/fuse, as make test has)", err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return f, mnt
}

func write(t *testing.T, path string, off int64, data string, sync bool) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.WriteAt([]byte(data), off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fd.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPowerLossDrop(t *testing.T) {
	f, mnt := mount(t)
	p := func(n string) string { return filepath.Join(mnt, n) }

	write(t, p("appended"), 0, "synced", true)
	write(t, p("appended"), 6, " lost", false)

	write(t, p("overwritten"), 0, "0123456789", true)
	write(t, p("overwritten"), 2, "ab", false)

	write(t, p("truncated"), 0, "0123456789", true)
	if err := os.Truncate(p("truncated"), 3); err != nil {
		t.Fatal(err)
	}

	write(t, p("never-synced"), 0, "gone", false)

	write(t, p("kept"), 0, "first", true)
	write(t, p("kept"), 5, " second", true)

	write(t, p("ckpt.tmp"), 0, "checkpoint", true)
	if err := os.Rename(p("ckpt.tmp"), p("ckpt")); err != nil {
		t.Fatal(err)
	}

	// A removed file is forgotten: its space is freed (no descriptor of
	// ours keeps it), and the power loss has nothing to undo in it.
	write(t, p("removed"), 0, "unsynced and then removed", false)
	if err := os.Remove(p("removed")); err != nil {
		t.Fatal(err)
	}

	if got := read(t, p("appended")); got != "synced lost" {
		t.Fatalf("before the power loss: %q", got)
	}
	if n := f.Unsynced(); n != 4 {
		t.Errorf("%d files with unsynced changes, want 4", n)
	}
	st, err := f.PowerLoss(Drop)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("power loss: %v", st)
	for name, want := range map[string]string{
		"appended": "synced", "overwritten": "0123456789", "truncated": "0123456789",
		"never-synced": "", "kept": "first second", "ckpt": "checkpoint",
	} {
		if got := read(t, p(name)); got != want {
			t.Errorf("%s after the power loss: %q, want %q", name, got, want)
		}
	}
	if f.Unsynced() != 0 {
		t.Error("unsynced changes left after the power loss")
	}
	// Writing goes on normally afterwards.
	write(t, p("appended"), 6, "!", true)
	if _, err := f.PowerLoss(Drop); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p("appended")); got != "synced!" {
		t.Errorf("after a second power loss: %q", got)
	}
}

func TestPowerLossGarble(t *testing.T) {
	f, mnt := mount(t)
	p := filepath.Join(mnt, "seg")
	write(t, p, 0, "durable|", true)
	tail := bytes.Repeat([]byte("unsynced-record;"), 64)
	write(t, p, 8, string(tail), false)
	st, err := f.PowerLoss(Garble)
	if err != nil {
		t.Fatal(err)
	}
	got := []byte(read(t, p))
	if !bytes.HasPrefix(got, []byte("durable|")) {
		t.Fatalf("the synced part changed: %q", got[:min(len(got), 16)])
	}
	torn := got[8:]
	if len(torn) == 0 || len(torn) > len(tail) || st.Garbled != 1 || st.KeptTorn != int64(len(torn)) {
		t.Fatalf("torn tail of %d bytes (stats %v), want 1..%d", len(torn), st, len(tail))
	}
	diff := 0
	for i := range torn {
		if torn[i] != tail[i] {
			diff++
		}
	}
	if diff != 1 {
		t.Errorf("%d bytes of the torn tail differ from what was written, want exactly 1", diff)
	}
}

// TestPowerLossDuringFsync: with fsyncs held, a write followed by an fsync
// does not become durable; the fsync fails at the power loss and the write
// is dropped, while what was synced before stays.
func TestPowerLossDuringFsync(t *testing.T) {
	f, mnt := mount(t)
	p := filepath.Join(mnt, "wal")
	write(t, p, 0, "acked|", true)
	f.HoldSyncs()
	fd, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.WriteAt([]byte("in-flight"), 6); err != nil {
		t.Fatal(err)
	}
	synced := make(chan error, 1)
	go func() { synced <- fd.Sync() }()
	deadline := time.Now().Add(10 * time.Second)
	for f.Held() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fsync never reached the file system")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The fsync is waiting: nothing reached the disk.
	if n := f.UnsyncedBytes(); n != int64(len("in-flight")) {
		t.Fatalf("unsynced bytes %d, want %d", n, len("in-flight"))
	}
	st, err := f.PowerLoss(Drop)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-synced; err == nil {
		t.Error("an fsync held through the power loss succeeded")
	}
	if st.Written != int64(len("in-flight")) || st.Dropped != int64(len("in-flight")) {
		t.Errorf("stats %v", st)
	}
	if got := read(t, p); got != "acked|" {
		t.Errorf("after the power loss: %q, want %q", got, "acked|")
	}
}

// TestKillDuringHeldFsync: a process killed while its fsync is held must
// die (the kernel interrupts the request), and its write is dropped.
func TestKillDuringHeldFsync(t *testing.T) {
	f, mnt := mount(t)
	p := filepath.Join(mnt, "seg")
	write(t, p, 0, "durable\n", true)
	f.HoldSyncs()
	child := exec.Command("sh", "-c", `printf 'lost\n' >> "$1" && exec sync "$1"`, "sh", p)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.Held() == 0 {
		if time.Now().After(deadline) {
			_ = child.Process.Kill()
			_ = child.Wait()
			t.Fatal("the child's fsync never reached the file system")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = child.Process.Kill()
	exited := make(chan struct{})
	go func() { _ = child.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_, _ = f.PowerLoss(Drop) // lets it go, so the test can end
		<-exited
		t.Fatal("a process killed during a held fsync did not exit")
	}
	if _, err := f.PowerLoss(Drop); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "durable\n" {
		t.Errorf("after the power loss: %q", got)
	}
}
