package broker_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/testbroker"
)

func sp(s string) *string { return &s }

// quotaDump renders described quotas as sorted lines: "user=alice, client-id=<default>: producer_byte_rate=1024".
func quotaDump(qs kadm.DescribedClientQuotas) []string {
	var out []string
	for _, q := range qs {
		var ents, vals []string
		for _, e := range q.Entity {
			ents = append(ents, e.String())
		}
		for _, v := range q.Values {
			vals = append(vals, fmt.Sprintf("%s=%g", v.Key, v.Value))
		}
		out = append(out, strings.Join(ents, ", ")+": "+strings.Join(vals, " "))
	}
	slices.Sort(out)
	return out
}

func describeAll(t *testing.T, adm *kadm.Client) []string {
	t.Helper()
	qs, err := adm.DescribeClientQuotas(ctxT(t), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return quotaDump(qs)
}

// TestClientQuotasAlterDescribeAndRestart: AlterClientQuotas and
// DescribeClientQuotas through kadm — named and default entities, filters,
// removal, validate_only, Kafka's error codes — and the quotas come back
// after a restart (the metadata log is replayed).
func TestClientQuotasAlterDescribeAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testbroker.Config(dir)
	cfg.Bind = testbroker.FreePort(t)
	cfg.Advertise = cfg.Bind
	b := testbroker.Start(t, cfg)
	adm := kadm.NewClient(client(t, b.Addr))
	ctx := ctxT(t)

	user := func(n *string) kadm.ClientQuotaEntityComponent {
		return kadm.ClientQuotaEntityComponent{Type: "user", Name: n}
	}
	cid := func(n *string) kadm.ClientQuotaEntityComponent {
		return kadm.ClientQuotaEntityComponent{Type: "client-id", Name: n}
	}
	set := func(k string, v float64) kadm.AlterClientQuotaOp { return kadm.AlterClientQuotaOp{Key: k, Value: v} }
	alter := func(entries ...kadm.AlterClientQuotaEntry) kadm.AlteredClientQuotas {
		t.Helper()
		res, err := adm.AlterClientQuotas(ctx, entries)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, r := range alter(
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("alice")), cid(sp("app"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1024), set("consumer_byte_rate", 4096)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("alice"))}, Ops: []kadm.AlterClientQuotaOp{set("request_percentage", 25.5)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(nil)}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 2048), set("controller_mutation_rate", 10)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{cid(nil)}, Ops: []kadm.AlterClientQuotaOp{set("consumer_byte_rate", 8192)}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(nil), cid(sp("etl"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 512)}},
	) {
		if r.Err != nil {
			t.Fatalf("alter %v: %v %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	want := []string{
		"client-id=<default>: consumer_byte_rate=8192",
		"user=<default>, client-id=etl: producer_byte_rate=512",
		"user=<default>: controller_mutation_rate=10 producer_byte_rate=2048",
		"user=alice, client-id=app: consumer_byte_rate=4096 producer_byte_rate=1024",
		"user=alice: request_percentage=25.5",
	}
	if got := describeAll(t, adm); !slices.Equal(got, want) {
		t.Fatalf("described\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	t.Run("filters", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			strict bool
			comps  []kadm.DescribeClientQuotaComponent
			want   []string
		}{
			{"exact user", false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: sp("alice"), MatchType: 0}}, []string{want[3], want[4]}},
			{"exact user strict", true, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: sp("alice"), MatchType: 0}}, []string{want[4]}},
			{"default user", false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 1}}, []string{want[1], want[2]}},
			{"any client-id strict", true, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: 2}}, []string{want[0]}},
			{"any user and any client-id", true, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 2}, {Type: "client-id", MatchType: 2}}, []string{want[1], want[3]}},
			{"exact client-id nobody has", false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchName: sp("nobody"), MatchType: 0}}, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				qs, err := adm.DescribeClientQuotas(ctx, c.strict, c.comps)
				if err != nil {
					t.Fatal(err)
				}
				if got := quotaDump(qs); !slices.Equal(got, c.want) {
					t.Fatalf("got %q want %q", got, c.want)
				}
			})
		}
	})

	t.Run("filter errors", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			comps []kadm.DescribeClientQuotaComponent
			want  *kerr.Error
		}{
			{"exact without a name", []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 0}}, kerr.InvalidRequest},
			{"default with a name", []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: sp("x"), MatchType: 1}}, kerr.InvalidRequest},
			{"type twice", []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 2}, {Type: "user", MatchType: 1}}, kerr.InvalidRequest},
			{"ip with user", []kadm.DescribeClientQuotaComponent{{Type: "ip", MatchType: 2}, {Type: "user", MatchType: 2}}, kerr.InvalidRequest},
			{"unknown type", []kadm.DescribeClientQuotaComponent{{Type: "group", MatchType: 2}}, kerr.UnsupportedVersion},
			{"unknown match type", []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: 7}}, kerr.UnsupportedVersion},
		} {
			t.Run(c.name, func(t *testing.T) {
				if _, err := adm.DescribeClientQuotas(ctx, false, c.comps); !errors.Is(err, c.want) {
					t.Fatalf("got %v, want %v", err, c.want)
				}
			})
		}
	})

	t.Run("alter errors", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			entry kadm.AlterClientQuotaEntry
		}{
			{"empty entity", kadm.AlterClientQuotaEntry{Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1)}}},
			{"unknown key", kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("bob"))}, Ops: []kadm.AlterClientQuotaOp{set("bytes_per_fortnight", 1)}}},
			{"fractional byte rate", kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("bob"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1.5)}}},
			{"zero rate", kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("bob"))}, Ops: []kadm.AlterClientQuotaOp{set("consumer_byte_rate", 0)}}},
			{"key twice", kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("bob"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1), set("producer_byte_rate", 2)}}},
			{"user twice", kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("bob")), user(nil)}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1)}}},
			{"unknown entity type", kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{{Type: "group", Name: sp("g")}}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1)}}},
			{"remove unknown key", kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("bob"))}, Ops: []kadm.AlterClientQuotaOp{{Key: "nope", Remove: true}}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				// A valid entity in the same request is applied; the invalid
				// one fails on its own.
				ok := kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("carol"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 100)}}
				res := alter(c.entry, ok)
				if len(res) != 2 || !errors.Is(res[0].Err, kerr.InvalidRequest) || res[1].Err != nil {
					t.Fatalf("results %+v", res)
				}
				t.Logf("%s: %v: %s", c.name, res[0].Err, res[0].ErrMessage)
			})
		}
		alter(kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("carol"))}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Remove: true}}})
		if got := describeAll(t, adm); !slices.Equal(got, want) {
			t.Fatalf("after the failed alters: %q", got)
		}
	})

	t.Run("validate only", func(t *testing.T) {
		res, err := adm.ValidateAlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
			{Entity: kadm.ClientQuotaEntity{user(sp("dave"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", 1)}},
			{Entity: kadm.ClientQuotaEntity{user(sp("dave"))}, Ops: []kadm.AlterClientQuotaOp{set("producer_byte_rate", -1)}},
		})
		if err != nil || res[0].Err != nil || !errors.Is(res[1].Err, kerr.InvalidRequest) {
			t.Fatalf("validate: %v %+v", err, res)
		}
		if got := describeAll(t, adm); !slices.Equal(got, want) {
			t.Fatalf("validate_only changed quotas: %q", got)
		}
	})

	t.Run("v0", func(t *testing.T) {
		// The non-flexible versions answer the same.
		cl := client(t, b.Addr)
		d := kmsg.NewPtrDescribeClientQuotasRequest()
		d.SetVersion(0)
		d.Components = []kmsg.DescribeClientQuotasRequestComponent{{EntityType: "client-id", MatchType: 1}}
		resp, err := d.RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 || len(resp.Entries) != 1 || resp.Entries[0].Values[0].Value != 8192 {
			t.Fatalf("describe v0: %v %+v", err, resp)
		}
		a := kmsg.NewPtrAlterClientQuotasRequest()
		a.SetVersion(0)
		a.ValidateOnly = true
		a.Entries = []kmsg.AlterClientQuotasRequestEntry{{Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "ip", Name: sp("1.2.3.4")}},
			Ops: []kmsg.AlterClientQuotasRequestEntryOp{{Key: "connection_creation_rate", Value: 1}}}}
		aresp, err := a.RequestWith(ctx, cl)
		if err != nil || len(aresp.Entries) != 1 || aresp.Entries[0].ErrorCode != kerr.InvalidRequest.Code {
			t.Fatalf("alter v0: %v %+v", err, aresp)
		}
	})

	// Removal: the last key of an entity removes the entity.
	alter(
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(sp("alice"))}, Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Remove: true}}},
		kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{user(nil)}, Ops: []kadm.AlterClientQuotaOp{{Key: "controller_mutation_rate", Remove: true}}},
	)
	want = []string{want[0], want[1], "user=<default>: producer_byte_rate=2048", want[3]}
	if got := describeAll(t, adm); !slices.Equal(got, want) {
		t.Fatalf("after removal\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b = testbroker.Start(t, cfg)
	adm = kadm.NewClient(client(t, b.Addr))
	if got := describeAll(t, adm); !slices.Equal(got, want) {
		t.Fatalf("after restart\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
