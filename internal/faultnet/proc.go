package faultnet

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrUnknownDialler is returned by ProcIdentifier when no listed process
// owns the connecting socket.
var ErrUnknownDialler = errors.New("no known process owns the connecting socket")

// ProcIdentifier identifies the dialling node from the kernel's socket
// table: the socket whose local address is the accepted connection's
// remote address (and whose remote address is the proxy) is found in
// /proc/net/tcp{,6}, and its inode among the open files of the processes
// pids returns (node id → pid). Linux only; the proxy and the nodes must
// share a network namespace.
func ProcIdentifier(pids func() map[int]int) Identifier {
	return func(remote, local net.Addr) (int, error) {
		ino, err := socketInode(remote, local)
		if err != nil {
			return 0, err
		}
		want := "socket:[" + ino + "]"
		for node, pid := range pids() {
			dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
			fds, err := os.ReadDir(dir)
			if err != nil {
				continue // the process is gone
			}
			for _, fd := range fds {
				if l, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && l == want {
					return node, nil
				}
			}
		}
		return 0, fmt.Errorf("%w (inode %s)", ErrUnknownDialler, ino)
	}
}

// socketInode finds the inode of the TCP socket bound to laddr and
// connected to raddr (the dialler's view of an accepted connection).
func socketInode(raddrOfAccepted, laddrOfAccepted net.Addr) (string, error) {
	self, err := netip.ParseAddrPort(raddrOfAccepted.String())
	if err != nil {
		return "", fmt.Errorf("dialler address: %w", err)
	}
	peer, err := netip.ParseAddrPort(laddrOfAccepted.String())
	if err != nil {
		return "", fmt.Errorf("proxy address: %w", err)
	}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		ino, err := findInode(file, self, peer)
		if err != nil {
			return "", err
		}
		if ino != "" {
			return ino, nil
		}
	}
	return "", fmt.Errorf("%w: no socket %s → %s in /proc/net/tcp", ErrUnknownDialler, self, peer)
}

func findInode(file string, local, remote netip.AddrPort) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("socket table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			continue
		}
		l, err1 := parseProcAddr(fs[1])
		r, err2 := parseProcAddr(fs[2])
		if err1 != nil || err2 != nil {
			continue
		}
		if sameAddrPort(l, local) && sameAddrPort(r, remote) {
			return fs[9], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("socket table: %w", err)
	}
	return "", nil
}

func sameAddrPort(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}

// parseProcAddr reads the kernel's "ADDR:PORT" form: the address as 32-bit
// words in host (little-endian) order, in hex; the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q", s)
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
