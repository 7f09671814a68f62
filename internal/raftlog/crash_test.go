package raftlog

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chronik-go/chronik/internal/storage"
	"github.com/chronik-go/chronik/internal/wal"
)

// Crash payload: base offset (8), count (4), seed (8), then filler bytes
// generated from the seed, so that any entry can be checked on its own.
func crashPayload(count uint32, seed uint64, n int) []byte {
	b := make([]byte, 20+n)
	binary.BigEndian.PutUint32(b[8:], count)
	binary.BigEndian.PutUint64(b[12:], seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 20; i < len(b); i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func checkCrashPayload(b []byte) error {
	if len(b) < 20 {
		return fmt.Errorf("payload of %d bytes", len(b))
	}
	want := crashPayload(binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint64(b[12:]), len(b)-20)
	if string(want[8:]) != string(b[8:]) {
		return fmt.Errorf("payload content does not match its seed")
	}
	return nil
}

const (
	crashPartitions = 4
	crashWriters    = 16
	crashChildEnv   = "CHRONIK_CRASH_CHILD_DIR"
)

func crashLogOptions() storage.Options {
	return storage.Options{Meta: meta, Logger: quiet(), SegmentBytes: 256 << 10, IndexIntervalBytes: 1024, RetentionAge: -1}
}

// crashChild is the process that gets killed; TestMain runs it instead of
// the tests when the parent test starts the test binary with crashChildEnv.
func crashChild(dir string) {
	prof, _ := wal.ProfileByName("low")
	c, _ := wal.New(prof)
	ctx := context.Background()
	go func() { _ = c.Run(ctx) }()
	var out sync.Mutex
	var groups []*Group
	for p := range crashPartitions {
		l, err := storage.Open(filepath.Join(dir, fmt.Sprintf("p%d", p)), c, crashLogOptions())
		if err != nil {
			fmt.Printf("open-error %d %v\n", p, err)
			os.Exit(3)
		}
		g, err := NewGroup(Config{GroupID: uint64(10 + p), NodeID: 1, Voters: []uint64{1}, Log: l, Meta: meta, Logger: quiet()})
		if err != nil {
			os.Exit(3)
		}
		go func() { _ = g.Run(ctx) }()
		groups = append(groups, g)
	}
	fmt.Println("ready")
	for w := range crashWriters {
		go func() {
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			g := groups[w%crashPartitions]
			for {
				size := 50 + r.IntN(3000)
				if r.IntN(20) == 0 {
					size = 30_000 + r.IntN(40_000)
				}
				seed := r.Uint64()
				d := crashPayload(uint32(1+r.IntN(5)), seed, size)
				res, err := g.ProposeWait(ctx, NewProposal(d, assign(d), false))
				if err != nil {
					time.Sleep(time.Millisecond)
					continue
				}
				out.Lock()
				fmt.Printf("ack %d %d %d\n", w%crashPartitions, res.BaseOffset, seed)
				out.Unlock()
			}
		}()
	}
	select {}
}

type ack struct {
	base int64
	seed uint64
}

// TestCrashKill9DuringAppends kills a process appending with full
// durability at random moments (during start-up and recovery, rolls and
// steady appends), restarts it, and checks after every kill that every
// acknowledged append is present and intact and that no partial entry is
// ever read back.
func TestCrashKill9DuringAppends(t *testing.T) {
	const kills = 55
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acked := make([][]ack, crashPartitions)
	totalAcks := 0
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill at a random moment: sometimes during start-up and recovery,
		// mostly while appends are in flight.
		delay := time.Duration(rng.IntN(300)) * time.Millisecond
		if k%5 == 0 {
			delay = time.Duration(rng.IntN(15)) * time.Millisecond
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		for line := range lines {
			f := strings.Fields(line)
			switch f[0] {
			case "ack":
				p, _ := strconv.Atoi(f[1])
				base, _ := strconv.ParseInt(f[2], 10, 64)
				seed, _ := strconv.ParseUint(f[3], 10, 64)
				acked[p] = append(acked[p], ack{base, seed})
				totalAcks++
			case "open-error":
				t.Fatalf("kill %d: child could not recover: %s", k, line)
			}
		}
		_ = cmd.Wait()
		verifyCrashDir(t, dir, acked, k)
	}
	t.Logf("crash: %d kill -9 runs, %d acknowledged appends verified after each", kills, totalAcks)
	if totalAcks < 100 {
		t.Fatalf("only %d appends were acknowledged across %d runs; the test did not exercise appends", totalAcks, kills)
	}
}

func verifyCrashDir(t *testing.T, dir string, acked [][]ack, kill int) {
	t.Helper()
	prof, _ := wal.ProfileByName("low")
	c, _ := wal.New(prof)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for p := range crashPartitions {
		path := filepath.Join(dir, fmt.Sprintf("p%d", p))
		if _, err := os.Stat(path); os.IsNotExist(err) {
			if len(acked[p]) > 0 {
				t.Fatalf("kill %d: partition %d has acknowledged appends but no log", kill, p)
			}
			continue
		}
		l, err := storage.Open(path, c, crashLogOptions())
		if err != nil {
			t.Fatalf("kill %d: recovery of partition %d failed: %v", kill, p, err)
		}
		// Everything stored is whole and contiguous.
		end := l.EndOffset()
		byBase := map[int64][]byte{}
		for off := l.LogStartOffset(); off < end; {
			bs, err := l.ReadRecords(off, 1<<20, end)
			if err != nil || len(bs) == 0 {
				t.Fatalf("kill %d: partition %d read at %d: %v", kill, p, off, err)
			}
			for _, b := range bs {
				if b.BaseOffset != off {
					t.Fatalf("kill %d: partition %d: gap or overlap at offset %d (batch starts %d)", kill, p, off, b.BaseOffset)
				}
				if err := checkCrashPayload(b.Data); err != nil {
					t.Fatalf("kill %d: partition %d offset %d: %v", kill, p, off, err)
				}
				byBase[b.BaseOffset] = b.Data
				off = b.EndOffset
			}
		}
		// Every acknowledged append is there, with its content.
		for _, a := range acked[p] {
			d, ok := byBase[a.base]
			if !ok {
				t.Fatalf("kill %d: partition %d lost acknowledged append at offset %d (end %d)", kill, p, a.base, end)
			}
			if binary.BigEndian.Uint64(d[12:]) != a.seed {
				t.Fatalf("kill %d: partition %d offset %d holds another append than acknowledged", kill, p, a.base)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
