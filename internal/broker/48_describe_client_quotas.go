package broker

// DescribeClientQuotas (key 48), versions 0–1 (v1 flexible).
//
// Filters as Kafka's: each component names an entity type (user,
// client-id) and matches an exact name (match type 0), the default (1) or
// any entity of that type, named or default (2); strict leaves out entities
// that have types the filter does not mention. Filter errors are Kafka's:
// INVALID_REQUEST for an empty or repeated type, a name where none belongs
// or none where one does, and ip together with user or client-id;
// UNSUPPORTED_VERSION for an unknown type or match type. Entities come out
// sorted (users before client ids, names before defaults) with their keys
// sorted. Deliberate gap: ip entities (connection_creation_rate) are not
// stored, so an ip filter matches nothing.

import (
	"cmp"
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/protocol"
	"github.com/chronik-go/chronik/internal/quota"
)

// quotaFilter is one parsed filter component.
type quotaFilter struct {
	typ   string
	match int8 // 0 exact, 1 default, 2 any
	name  string
}

func (b *Broker) handleDescribeClientQuotas(_ context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.DescribeClientQuotasRequest)
	resp := kmsg.NewPtrDescribeClientQuotasResponse()
	resp.SetVersion(h.Version)
	filters, terr := parseQuotaFilter(req.Components)
	if terr != nil {
		resp.ErrorCode, resp.ErrorMessage = terr.code.Code, &terr.msg
		return result{resp: resp}
	}
	all := b.node.Meta().Quotas()
	entities := make([]quota.Entity, 0, len(all))
	for e := range all {
		if quotaMatches(e, filters, req.Strict) {
			entities = append(entities, e)
		}
	}
	slices.SortFunc(entities, compareEntities)
	resp.Entries = make([]kmsg.DescribeClientQuotasResponseEntry, 0, len(entities))
	for _, e := range entities {
		entry := kmsg.DescribeClientQuotasResponseEntry{}
		for _, c := range entityComponents(e) {
			entry.Entity = append(entry.Entity, kmsg.DescribeClientQuotasResponseEntryEntity{Type: c.typ, Name: c.name})
		}
		keys := make([]string, 0, len(all[e]))
		for k := range all[e] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			entry.Values = append(entry.Values, kmsg.DescribeClientQuotasResponseEntryValue{Key: k, Value: all[e][k]})
		}
		resp.Entries = append(resp.Entries, entry)
	}
	return result{resp: resp}
}

func parseQuotaFilter(comps []kmsg.DescribeClientQuotasRequestComponent) ([]quotaFilter, *topicErr) {
	var out []quotaFilter
	seen := map[string]bool{}
	for _, c := range comps {
		if c.EntityType == "" {
			return nil, errWith(kerr.InvalidRequest, "invalid empty entity type")
		}
		if seen[c.EntityType] {
			return nil, errWith(kerr.InvalidRequest, "entity type %s cannot appear more than once in the filter", c.EntityType)
		}
		seen[c.EntityType] = true
		switch c.EntityType {
		case quota.TypeUser, quota.TypeClientID, quota.TypeIP:
		default:
			return nil, errWith(kerr.UnsupportedVersion, "unsupported entity type %s", c.EntityType)
		}
		f := quotaFilter{typ: c.EntityType, match: int8(c.MatchType)}
		switch c.MatchType {
		case 0:
			if c.Match == nil {
				return nil, errWith(kerr.InvalidRequest, "match type exact (0) needs a match string")
			}
			f.name = *c.Match
		case 1, 2:
			if c.Match != nil {
				return nil, errWith(kerr.InvalidRequest, "match type %d takes no match string", c.MatchType)
			}
		default:
			return nil, errWith(kerr.UnsupportedVersion, "unknown match type %d", c.MatchType)
		}
		out = append(out, f)
	}
	if seen[quota.TypeIP] && (seen[quota.TypeUser] || seen[quota.TypeClientID]) {
		return nil, errWith(kerr.InvalidRequest, "an ip filter component cannot be combined with user or client-id components")
	}
	return out, nil
}

func quotaMatches(e quota.Entity, filters []quotaFilter, strict bool) bool {
	types := 0
	if e.UserPart != quota.Absent {
		types++
	}
	if e.ClientPart != quota.Absent {
		types++
	}
	if strict && types != len(filters) {
		return false
	}
	for _, f := range filters {
		var part quota.Part
		var name string
		switch f.typ {
		case quota.TypeUser:
			part, name = e.UserPart, e.User
		case quota.TypeClientID:
			part, name = e.ClientPart, e.ClientID
		default:
			return false // ip entities are not stored
		}
		switch {
		case part == quota.Absent:
			return false
		case f.match == 0 && (part != quota.Named || name != f.name):
			return false
		case f.match == 1 && part != quota.Default:
			return false
		}
	}
	return true
}

// entityComponent is an entity's type and name (nil: the default) as the
// wire carries them.
type entityComponent struct {
	typ  string
	name *string
}

func entityComponents(e quota.Entity) []entityComponent {
	var out []entityComponent
	add := func(typ string, p quota.Part, name string) {
		switch p {
		case quota.Named:
			out = append(out, entityComponent{typ, strp(name)})
		case quota.Default:
			out = append(out, entityComponent{typ, nil})
		}
	}
	add(quota.TypeUser, e.UserPart, e.User)
	add(quota.TypeClientID, e.ClientPart, e.ClientID)
	return out
}

func compareEntities(a, b quota.Entity) int {
	return cmp.Or(cmp.Compare(a.UserPart, b.UserPart), cmp.Compare(a.User, b.User), cmp.Compare(a.ClientPart, b.ClientPart), cmp.Compare(a.ClientID, b.ClientID))
}
