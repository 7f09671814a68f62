package quota

import "time"

// Window shapes the rate measurement: Samples samples of Size each
// (quota.window.num, quota.window.size.seconds).
type Window struct {
	Samples int
	Size    time.Duration
}

// rate measures a value per second over a sliding window of samples, with
// Kafka's semantics (org.apache.kafka.common.metrics.stats.Rate over a
// SampledStat) so that throttle times match what Kafka clients expect:
//
//   - a record goes into the current sample; a sample older than Size is
//     closed and the next slot (a ring of Samples) starts at the record's
//     time;
//   - samples that started Samples×Size ago or more are reset before
//     measuring;
//   - the rate is the sum of the samples over the time since the oldest
//     sample started, but never over less than Samples−1 full windows: a new
//     client cannot get a huge rate from one early burst (it may instead
//     burst up to about (Samples−1)×Size×quota before it is throttled, as in
//     Kafka).
//
// It is not safe for concurrent use; its Sensor serialises access.
type rate struct {
	w       Window
	samples []sample
	current int
}

type sample struct {
	start int64 // unix nanos
	value float64
}

func (r *rate) record(now int64, v float64) {
	if len(r.samples) == 0 {
		r.samples = append(r.samples, sample{start: now})
		r.current = 0
	}
	if now-r.samples[r.current].start >= int64(r.w.Size) {
		r.current = (r.current + 1) % r.w.Samples
		if r.current >= len(r.samples) {
			r.samples = append(r.samples, sample{start: now})
		} else {
			r.samples[r.current] = sample{start: now}
		}
	}
	r.samples[r.current].value += v
}

// measure returns the rate per second at now and the length of the window
// it was measured over (which the throttle time scales with).
func (r *rate) measure(now int64) (perSecond float64, window time.Duration) {
	expire := int64(r.w.Samples) * int64(r.w.Size)
	total := 0.0
	oldest := now
	for i := range r.samples {
		s := &r.samples[i]
		if now-s.start >= expire {
			*s = sample{start: now}
		}
		total += s.value
		oldest = min(oldest, s.start)
	}
	elapsed := now - oldest
	if full, minFull := elapsed/int64(r.w.Size), int64(r.w.Samples-1); full < minFull {
		elapsed += (minFull - full) * int64(r.w.Size)
	}
	window = time.Duration(elapsed)
	return total / window.Seconds(), window
}
