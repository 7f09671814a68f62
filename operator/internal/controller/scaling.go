package controller

import (
	"fmt"
	"math"
	"time"
)

// observation is one metric of an autoscaler: its current value per
// broker (nil when it could not be observed) and target.
type observation struct {
	Type      string
	Current   *float64
	Target    float64
	Tolerance float64 // fraction, 0.1 for 10 %
	Message   string  // why Current is nil
}

// scaleInput is everything one autoscaler decision depends on.
type scaleInput struct {
	Current, Min, Max      int32
	Observations           []observation
	UpStreak, DownStreak   int32
	UpCount, DownCount     int32 // stabilization counts
	UpCooldown, DownCoolDn time.Duration
	LastScale              time.Time
	Now                    time.Time
}

// scaleDecision is the outcome: the replicas wanted now, the streaks to
// keep, and whether to act.
type scaleDecision struct {
	Desired              int32 // what the metrics ask for (clamped)
	Scale                bool  // act now: stabilized and out of cooldown
	UpStreak, DownStreak int32
	Reason               string
}

// decideScale applies the original autoscaler's rules: each observed
// metric asks for ceil(current × value/target) brokers unless it is within
// its tolerance of the target; the largest ask wins (any metric can keep
// the cluster from shrinking); the result is clamped to [min, max]. A
// change happens only after the same direction was asked for
// stabilization-count observations in a row and the direction's cooldown
// since the last scale has passed. Outside [min, max] the clamp acts at once.
func decideScale(in scaleInput) scaleDecision {
	clamp := func(n int32) int32 { return max(in.Min, min(in.Max, n)) }
	if in.Current < in.Min || in.Current > in.Max {
		return scaleDecision{Desired: clamp(in.Current), Scale: true, Reason: fmt.Sprintf("%d replicas are outside [%d, %d]", in.Current, in.Min, in.Max)}
	}
	want := int32(-1)
	for _, o := range in.Observations {
		if o.Current == nil || o.Target <= 0 {
			continue
		}
		ratio := *o.Current / o.Target
		ask := in.Current
		if math.Abs(ratio-1) > o.Tolerance {
			ask = int32(math.Ceil(float64(in.Current) * ratio))
		}
		want = max(want, ask)
	}
	if want < 0 {
		return scaleDecision{Desired: in.Current, Reason: "no metric could be observed"}
	}
	d := scaleDecision{Desired: clamp(want)}
	since := in.Now.Sub(in.LastScale)
	switch {
	case d.Desired > in.Current:
		d.UpStreak = in.UpStreak + 1
		switch {
		case d.UpStreak < in.UpCount:
			d.Reason = fmt.Sprintf("scale up to %d asked %d of %d times in a row", d.Desired, d.UpStreak, in.UpCount)
		case !in.LastScale.IsZero() && since < in.UpCooldown:
			d.Reason = fmt.Sprintf("scale up to %d waits for the cooldown (%s left)", d.Desired, (in.UpCooldown - since).Round(time.Second))
		default:
			d.Scale, d.Reason = true, fmt.Sprintf("scale up from %d to %d", in.Current, d.Desired)
		}
	case d.Desired < in.Current:
		d.DownStreak = in.DownStreak + 1
		switch {
		case d.DownStreak < in.DownCount:
			d.Reason = fmt.Sprintf("scale down to %d asked %d of %d times in a row", d.Desired, d.DownStreak, in.DownCount)
		case !in.LastScale.IsZero() && since < in.DownCoolDn:
			d.Reason = fmt.Sprintf("scale down to %d waits for the cooldown (%s left)", d.Desired, (in.DownCoolDn - since).Round(time.Second))
		default:
			d.Scale, d.Reason = true, fmt.Sprintf("scale down from %d to %d", in.Current, d.Desired)
		}
	default:
		d.Reason = "every metric is within its tolerance"
	}
	if d.Scale {
		d.UpStreak, d.DownStreak = 0, 0
	}
	return d
}
