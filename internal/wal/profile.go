package wal

import (
	"fmt"
	"strings"
	"time"
)

// Profile sets how the committer trades latency for throughput. The four
// named profiles carry the original Chronik's parameters.
type Profile struct {
	// Name is the canonical profile name.
	Name string
	// MaxWait bounds how long a write may be held back to fill a round
	// (see Committer for when a round lingers at all).
	MaxWait time.Duration
	// MaxBatchWrites and MaxBatchBytes cap one round.
	MaxBatchWrites int
	MaxBatchBytes  int
	// QueueDepth is the number of submitted writes that may wait for a
	// round; Submit blocks beyond it (backpressure, never an error).
	QueueDepth int
	// Sync says whether a round ends with fdatasync. Only the explicit
	// profile "none" turns it off.
	Sync bool
}

// DefaultProfile is used when nothing is configured, as in the original.
const DefaultProfile = "low"

// ProfileNames lists the accepted canonical names, in order of latency.
func ProfileNames() []string { return []string{"low", "medium", "high", "ultra", "none"} }

// ProfileByName returns the profile called name. Names are
// case-insensitive and accept the original's aliases.
func ProfileByName(name string) (Profile, error) {
	const mb = 1000 * 1000
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "low", "small", "container":
		return Profile{Name: "low", MaxWait: 2 * time.Millisecond, MaxBatchWrites: 500, MaxBatchBytes: 5 * mb, QueueDepth: 2500, Sync: true}, nil
	case "medium", "balanced":
		return Profile{Name: "medium", MaxWait: 10 * time.Millisecond, MaxBatchWrites: 2000, MaxBatchBytes: 15 * mb, QueueDepth: 10000, Sync: true}, nil
	case "high", "aggressive", "dedicated":
		return Profile{Name: "high", MaxWait: 50 * time.Millisecond, MaxBatchWrites: 10000, MaxBatchBytes: 50 * mb, QueueDepth: 50000, Sync: true}, nil
	case "ultra", "maximum", "throughput":
		return Profile{Name: "ultra", MaxWait: 100 * time.Millisecond, MaxBatchWrites: 20000, MaxBatchBytes: 100 * mb, QueueDepth: 100000, Sync: true}, nil
	case "none", "nosync", "page-cache":
		// Kafka's default durability: acknowledged once in the page cache.
		// A process crash loses nothing; a power loss can.
		return Profile{Name: "none", MaxWait: 2 * time.Millisecond, MaxBatchWrites: 500, MaxBatchBytes: 5 * mb, QueueDepth: 2500, Sync: false}, nil
	}
	return Profile{}, fmt.Errorf("unknown WAL profile %q (want one of %s)", name, strings.Join(ProfileNames(), ", "))
}

// Validate reports whether p can drive a committer.
func (p Profile) Validate() error {
	switch {
	case p.MaxWait < 0:
		return fmt.Errorf("wal profile %s: negative max wait", p.Name)
	case p.MaxBatchWrites < 1, p.MaxBatchBytes < 1, p.QueueDepth < 1:
		return fmt.Errorf("wal profile %s: batch limits and queue depth must be positive", p.Name)
	}
	return nil
}
