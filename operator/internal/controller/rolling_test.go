package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestNextRestart(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pods := func(spec string) []rollPod {
		// one letter per ordinal: o = old and ready, n = new and ready,
		// u = old, not ready; m = missing; d = deleting
		var out []rollPod
		for i, c := range spec {
			p := rollPod{Ordinal: int32(i), Name: fmt.Sprintf("c-%d", i), Exists: c != 'm', Ready: c == 'o' || c == 'n',
				Deleting: c == 'd', UpToDate: c == 'n', ReadySince: now.Add(-time.Hour)}
			out = append(out, p)
		}
		return out
	}
	healthy := clusterHealth{Brokers: []int32{1, 2, 3}, Controller: 1, Total: 10}
	for _, tc := range []struct {
		name    string
		in      rollInput
		restart string
		done    bool
		wait    string
	}{
		{name: "all current", in: rollInput{Pods: pods("nnn"), Health: healthy}, done: true},
		{name: "followers first, highest ordinal first", in: rollInput{Pods: pods("ooo"), Health: healthy}, restart: "c-2"},
		{name: "leader last", in: rollInput{Pods: pods("onn"), Health: healthy}, restart: "c-0"},
		{name: "leader skipped while others wait", in: rollInput{Pods: pods("oon"), Health: healthy}, restart: "c-1"},
		{name: "pod not ready", in: rollInput{Pods: pods("oun"), Health: healthy}, wait: "c-1 to report /readyz"},
		{name: "pod missing", in: rollInput{Pods: pods("omn"), Health: healthy}, wait: "c-1 to be recreated"},
		{name: "pod deleting", in: rollInput{Pods: pods("odn"), Health: healthy}, wait: "c-1 to be recreated"},
		{name: "brokers unreachable", in: rollInput{Pods: pods("ooo"), HealthErr: errors.New("dial tcp: refused")}, wait: "cannot ask the brokers"},
		{name: "under-replicated", in: rollInput{Pods: pods("oon"), Health: clusterHealth{Brokers: []int32{1, 2, 3}, Controller: 1, Total: 10, UnderReplicated: 2, Example: "t-0 has 2 of 3 replicas in sync"}},
			wait: "2 under-replicated, 0 offline; t-0 has 2 of 3"},
		{name: "offline partition", in: rollInput{Pods: pods("ooo"), Health: clusterHealth{Brokers: []int32{1, 2, 3}, Total: 10, Offline: 1}}, wait: "1 offline"},
		{name: "broker not registered", in: rollInput{Pods: pods("ooo"), Health: clusterHealth{Brokers: []int32{1, 3}, Controller: 1}}, wait: "all 3 brokers to be registered"},
		{name: "restart delay running", in: rollInput{Pods: func() []rollPod {
			p := pods("oon")
			p[2].ReadySince = now.Add(-10 * time.Second)
			return p
		}(), Health: healthy, Delay: 30 * time.Second, Now: now}, wait: "restart delay: next pod in 20s"},
		{name: "restart delay over", in: rollInput{Pods: func() []rollPod {
			p := pods("oon")
			p[2].ReadySince = now.Add(-31 * time.Second)
			return p
		}(), Health: healthy, Delay: 30 * time.Second, Now: now}, restart: "c-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nextRestart(tc.in)
			if got.Done != tc.done || got.Restart != tc.restart || !strings.Contains(got.Wait, tc.wait) || (tc.wait == "" && got.Wait != "") {
				t.Fatalf("got %+v; want done=%t restart=%q wait~%q", got, tc.done, tc.restart, tc.wait)
			}
		})
	}
}
