package broker

// AlterClientQuotas (key 49), versions 0–1 (v1 flexible).
//
// Entities are user and/or client-id, each named or the default (null
// name). Keys: producer_byte_rate and consumer_byte_rate (whole numbers),
// request_percentage and controller_mutation_rate (stored and described;
// not enforced, there are no controller mutations to throttle). Kafka's
// errors per entity: INVALID_REQUEST for an empty entity, a repeated or
// unknown entity type, an unknown key, a key given twice, or a value the
// key does not take. We also refuse values of zero or less (a zero rate
// would throttle forever). validate_only checks and changes nothing. The
// valid entities of a request commit as one metadata command, so they
// change together on every node and survive restarts.
// Deliberate gap: ip entities (connection_creation_rate) are refused with
// INVALID_REQUEST.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/meta"
	"github.com/chronik-go/chronik/internal/protocol"
	"github.com/chronik-go/chronik/internal/quota"
)

func (b *Broker) handleAlterClientQuotas(ctx context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.AlterClientQuotasRequest)
	resp := kmsg.NewPtrAlterClientQuotasResponse()
	resp.SetVersion(h.Version)
	var alts []meta.QuotaAlteration
	var valid []int // response entries of alts
	for _, re := range req.Entries {
		out := kmsg.AlterClientQuotasResponseEntry{}
		for _, c := range re.Entity {
			out.Entity = append(out.Entity, kmsg.AlterClientQuotasResponseEntryEntity{Type: c.Type, Name: c.Name})
		}
		alt, terr := parseQuotaAlteration(re)
		if terr != nil {
			out.ErrorCode, out.ErrorMessage = terr.code.Code, &terr.msg
		} else {
			alts = append(alts, alt)
			valid = append(valid, len(resp.Entries))
		}
		resp.Entries = append(resp.Entries, out)
	}
	if req.ValidateOnly || len(alts) == 0 {
		return result{resp: resp}
	}
	if _, err := b.node.ProposeMeta(ctx, &meta.Command{Op: meta.OpAlterClientQuotas, Quotas: alts}); err != nil {
		terr := metaErr(err)
		if errors.Is(err, meta.ErrInvalidConfig) {
			terr = errWith(kerr.InvalidRequest, "%v", err)
		}
		for _, i := range valid {
			resp.Entries[i].ErrorCode, resp.Entries[i].ErrorMessage = terr.code.Code, &terr.msg
		}
	}
	return result{resp: resp}
}

func parseQuotaAlteration(re kmsg.AlterClientQuotasRequestEntry) (meta.QuotaAlteration, *topicErr) {
	var alt meta.QuotaAlteration
	if len(re.Entity) == 0 {
		return alt, errWith(kerr.InvalidRequest, "invalid empty client quota entity")
	}
	e := &alt.Entity
	for _, c := range re.Entity {
		part, name := quota.Named, ""
		if c.Name == nil {
			part = quota.Default
		} else {
			name = *c.Name
		}
		switch c.Type {
		case quota.TypeUser:
			if e.UserPart != quota.Absent {
				return alt, errWith(kerr.InvalidRequest, "duplicate user component in client quota entity")
			}
			e.UserPart, e.User = part, name
		case quota.TypeClientID:
			if e.ClientPart != quota.Absent {
				return alt, errWith(kerr.InvalidRequest, "duplicate client-id component in client quota entity")
			}
			e.ClientPart, e.ClientID = part, name
		case quota.TypeIP:
			return alt, errWith(kerr.InvalidRequest, "ip quotas are not supported")
		default:
			return alt, errWith(kerr.InvalidRequest, "unhandled client quota entity type %q", c.Type)
		}
	}
	seen := map[string]bool{}
	for _, op := range re.Ops {
		if seen[op.Key] {
			return alt, errWith(kerr.InvalidRequest, "quota key %s appears more than once", op.Key)
		}
		seen[op.Key] = true
		if op.Remove {
			if err := quota.ValidateValue(op.Key, 1); err != nil {
				return alt, errWith(kerr.InvalidRequest, "invalid configuration key %s", op.Key)
			}
			alt.Remove = append(alt.Remove, op.Key)
			continue
		}
		if err := quota.ValidateValue(op.Key, op.Value); err != nil {
			return alt, errWith(kerr.InvalidRequest, "%v", err)
		}
		if alt.Set == nil {
			alt.Set = map[string]float64{}
		}
		alt.Set[op.Key] = op.Value
	}
	return alt, nil
}
