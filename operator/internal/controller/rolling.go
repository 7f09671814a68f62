package controller

import (
	"fmt"
	"time"
)

// rollPod is one broker pod as the rolling restart sees it.
type rollPod struct {
	Ordinal  int32
	Name     string
	Exists   bool
	Ready    bool
	Deleting bool
	UpToDate bool // runs the StatefulSet's update revision
	// ReadySince is when the pod last became ready.
	ReadySince time.Time
}

// rollInput is everything one step of a rolling restart depends on.
type rollInput struct {
	Pods []rollPod // every ordinal below replicas, in order
	// Health is what the brokers said; HealthErr is set when they could
	// not be asked (then nothing restarts).
	Health    clusterHealth
	HealthErr error
	Delay     time.Duration // spec.updateStrategy.restartDelaySecs
	Now       time.Time
}

// rollStep is what to do now.
type rollStep struct {
	// Done is true when every pod runs the current template.
	Done bool
	// Restart names the pod to delete now (its StatefulSet recreates it
	// from the current template); empty means wait.
	Restart string
	// Wait says why nothing restarts now, for the condition message.
	Wait string
	// After is when to look again while waiting on the restart delay.
	After time.Duration
}

// nextRestart decides one step of a rolling restart: restart at most one
// out-of-date pod, and only while every pod is ready, the brokers report
// every partition led and in sync, and the previous restart's pod has been
// ready for the restart delay. Followers go first, the metadata leader
// last (one leadership move instead of several), higher ordinals before
// lower. A restarted pod's broker hands its leaderships away on SIGTERM.
func nextRestart(in rollInput) rollStep {
	var outdated []rollPod
	var lastReady time.Time
	for _, p := range in.Pods {
		if !p.Exists || p.Deleting {
			return rollStep{Wait: fmt.Sprintf("waiting for pod %s to be recreated", p.Name)}
		}
		if !p.Ready {
			return rollStep{Wait: fmt.Sprintf("waiting for pod %s to report /readyz", p.Name)}
		}
		if !p.UpToDate {
			outdated = append(outdated, p)
		} else if p.ReadySince.After(lastReady) {
			lastReady = p.ReadySince
		}
	}
	if len(outdated) == 0 {
		return rollStep{Done: true}
	}
	if in.HealthErr != nil {
		return rollStep{Wait: fmt.Sprintf("cannot ask the brokers for partition state: %v", in.HealthErr)}
	}
	if len(in.Health.Brokers) < len(in.Pods) {
		return rollStep{Wait: fmt.Sprintf("waiting for all %d brokers to be registered (Metadata lists %d)", len(in.Pods), len(in.Health.Brokers))}
	}
	if !in.Health.inSync() {
		return rollStep{Wait: fmt.Sprintf("waiting for partitions to be in sync (%d under-replicated, %d offline; %s)",
			in.Health.UnderReplicated, in.Health.Offline, in.Health.Example)}
	}
	// The restart delay counts from the moment the most recently
	// restarted pod became ready; pods that were never restarted in this
	// roll do not hold it up (they have been ready all along).
	if in.Delay > 0 && !lastReady.IsZero() {
		if wait := lastReady.Add(in.Delay).Sub(in.Now); wait > 0 {
			return rollStep{Wait: fmt.Sprintf("restart delay: next pod in %s", wait.Round(time.Second)), After: wait}
		}
	}
	pick := outdated[0]
	for _, p := range outdated[1:] {
		if better(p, pick, in.Health.Controller) {
			pick = p
		}
	}
	return rollStep{Restart: pick.Name}
}

// better orders restart candidates: non-leaders first, then higher ordinals.
func better(a, b rollPod, controller int32) bool {
	aLeader, bLeader := a.Ordinal+1 == controller, b.Ordinal+1 == controller
	if aLeader != bLeader {
		return bLeader
	}
	return a.Ordinal > b.Ordinal
}
