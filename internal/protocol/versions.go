package protocol

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Versions is the table of (API key, version range) the broker serves. It
// is built once at start-up from the handlers that exist, and ApiVersions
// advertises exactly it.
type Versions struct {
	ranges map[int16][2]int16
}

// NewVersions returns an empty table.
func NewVersions() *Versions { return &Versions{ranges: map[int16][2]int16{}} }

// Add serves key for versions [min, max]. max must not exceed what kmsg can
// encode.
func (v *Versions) Add(key, min, max int16) {
	if req := kmsg.RequestForKey(key); req == nil || max > req.MaxVersion() || min > max {
		panic("protocol: bad version range for key " + kmsg.NameForKey(key))
	}
	v.ranges[key] = [2]int16{min, max}
}

// Supports reports whether key at version is served.
func (v *Versions) Supports(key, version int16) bool {
	r, ok := v.ranges[key]
	return ok && version >= r[0] && version <= r[1]
}

// Range returns the served range of key.
func (v *Versions) Range(key int16) (min, max int16, ok bool) {
	r, ok := v.ranges[key]
	return r[0], r[1], ok
}

// APIKeys returns the table as ApiVersions response entries, by key.
func (v *Versions) APIKeys() []kmsg.ApiVersionsResponseApiKey {
	out := make([]kmsg.ApiVersionsResponseApiKey, 0, len(v.ranges))
	for k, r := range v.ranges {
		out = append(out, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: r[0], MaxVersion: r[1]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}
