// Package testfs gives tests real file systems with real limits: a small
// ext4 file system on a loop device, where a full disk is a real ENOSPC and
// an immutable file a real EPERM. It is imported only by tests and must
// never be used by the broker.
package testfs

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// SmallExt4 mounts a fresh ext4 file system of sizeMB and returns its mount
// point; it is unmounted when the test ends. It needs root and e2fsprogs
// (make test installs them) and fails the test, never skips it, without.
func SmallExt4(t testing.TB, sizeMB int) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	mnt := filepath.Join(t.TempDir(), "mnt")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s(fault tests need root and e2fsprogs: run them through make test)", name, strings.Join(args, " "), err, out)
		}
	}
	run("truncate", "-s", fmt.Sprintf("%dM", sizeMB), img)
	run("mkfs.ext4", "-q", "-F", img)
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run("mount", "-o", "loop", img, mnt)
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	return mnt
}

// Fill writes a file of n bytes at path and syncs it, to take space away.
func Fill(t testing.TB, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, zeros{}, n); err != nil {
		t.Fatalf("fill %s: %v", path, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// Chattr runs chattr flag path (+i makes a file immutable, even for root).
func Chattr(t testing.TB, flag, path string) {
	t.Helper()
	if out, err := exec.Command("chattr", flag, path).CombinedOutput(); err != nil {
		t.Fatalf("chattr %s %s: %v %s", flag, path, err, out)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
