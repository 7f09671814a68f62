// Package quota owns Kafka client quotas: the entities they apply to (user
// and/or client-id, each a name or the default), Kafka's precedence when
// resolving which quota applies to a connection, and the sliding-window rate
// measurement that turns usage into a throttle time (KIP-13, KIP-55,
// KIP-124, KIP-219). It must never do I/O or read the clock itself: time is
// passed in (the broker supplies time.Now), so every rule is testable.
package quota

import (
	"errors"
	"fmt"
	"math"
)

// Anonymous is the user principal of every connection until authentication
// lands; lookups take the principal as a parameter so that it plugs in.
const Anonymous = "ANONYMOUS"

// Entity types as Kafka names them in DescribeClientQuotas and
// AlterClientQuotas.
const (
	TypeUser     = "user"
	TypeClientID = "client-id"
	TypeIP       = "ip"
)

// Quota keys (Kafka's names).
const (
	ProducerByteRate       = "producer_byte_rate"
	ConsumerByteRate       = "consumer_byte_rate"
	RequestPercentage      = "request_percentage"
	ControllerMutationRate = "controller_mutation_rate"
)

// Errors of validation; the broker maps them to INVALID_REQUEST.
var (
	// ErrUnknownKey is a quota key Kafka does not define for user and
	// client-id entities.
	ErrUnknownKey = errors.New("unknown quota key")
	// ErrBadValue is a value outside what the key accepts.
	ErrBadValue = errors.New("invalid quota value")
)

// ValidateValue checks one key and value the way Kafka does: byte rates
// are longs, the others doubles. A value of zero or less would throttle
// forever (or divide by zero), so it is refused as well.
func ValidateValue(key string, v float64) error {
	switch key {
	case ProducerByteRate, ConsumerByteRate:
		if v != math.Trunc(v) || v > math.MaxInt64 {
			return fmt.Errorf("%w: %s must be a whole number, got %v", ErrBadValue, key, v)
		}
	case RequestPercentage, ControllerMutationRate:
	default:
		return fmt.Errorf("%w: %q", ErrUnknownKey, key)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return fmt.Errorf("%w: %s must be greater than 0, got %v", ErrBadValue, key, v)
	}
	return nil
}

// Part says how an entity names one of its types.
type Part uint8

// Parts of an entity.
const (
	// Absent: the entity does not involve this type.
	Absent Part = iota
	// Named: the entity names one user or client id.
	Named
	// Default: the entity is the default of its type (<default>).
	Default
)

// Entity is what a quota applies to: a user, a client id, or both, each
// either named or the default. It is comparable, so it keys maps; the zero
// Entity is empty and invalid.
type Entity struct {
	UserPart   Part   `json:"user_part,omitempty"`
	User       string `json:"user,omitempty"`
	ClientPart Part   `json:"client_part,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
}

// Valid reports whether the entity names at least one type and carries a
// name only where it is Named.
func (e Entity) Valid() bool {
	ok := func(p Part, name string) bool {
		return p == Named || (p == Absent || p == Default) && name == ""
	}
	return (e.UserPart != Absent || e.ClientPart != Absent) && e.UserPart <= Default && e.ClientPart <= Default &&
		ok(e.UserPart, e.User) && ok(e.ClientPart, e.ClientID)
}

// String is Kafka's notation: user=alice, client-id=<default>.
func (e Entity) String() string {
	s := ""
	add := func(typ string, p Part, name string) {
		if p == Absent {
			return
		}
		if s != "" {
			s += ", "
		}
		if p == Default {
			name = "<default>"
		}
		s += typ + "=" + name
	}
	add(TypeUser, e.UserPart, e.User)
	add(TypeClientID, e.ClientPart, e.ClientID)
	return s
}

// Kind is one enforced quota type.
type Kind uint8

// Enforced quota kinds; ControllerMutationRate is stored and described but
// not enforced (we have no controller mutations to throttle yet).
const (
	Produce Kind = iota
	Fetch
	Request
	numKinds
)

// String is the metric label of the kind.
func (k Kind) String() string {
	return [...]string{"produce", "fetch", "request"}[k]
}

// Key is the quota key that limits the kind.
func (k Kind) Key() string {
	return [...]string{ProducerByteRate, ConsumerByteRate, RequestPercentage}[k]
}

// Values are the quotas set on one entity, by key.
type Values map[string]float64

// Table is every configured quota. It is immutable once built.
type Table struct {
	entries map[Entity]Values
	has     [numKinds]bool
}

// NewTable indexes quotas (the map is not copied; the caller gives it up).
func NewTable(entries map[Entity]Values) *Table {
	t := &Table{entries: entries}
	for _, v := range entries {
		for k := range numKinds {
			if _, ok := v[k.Key()]; ok {
				t.has[k] = true
			}
		}
	}
	return t
}

// Has reports whether any entity sets a quota of kind k: when none does,
// usage of that kind is not even measured.
func (t *Table) Has(k Kind) bool { return t != nil && t.has[k] }

// Resolved is the quota that applies to a connection for one kind: the
// limit and the entity whose usage is measured against it (the actual user
// and/or client id where the matching entity names a user and/or a client
// id, named or default — so /users/<default> is measured per user).
type Resolved struct {
	Limit   float64
	Measure Entity
	OK      bool
}

// Resolve finds the quota of kind k for user and clientID in Kafka's order
// (KIP-55): /users/u/clients/c, /users/u/clients/<default>, /users/u,
// /users/<default>/clients/c, /users/<default>/clients/<default>,
// /users/<default>, /clients/c, /clients/<default>. The first entity that
// sets the kind's key wins.
func (t *Table) Resolve(k Kind, user, clientID string) Resolved {
	if !t.Has(k) {
		return Resolved{}
	}
	key := k.Key()
	for _, e := range [...]Entity{
		{UserPart: Named, User: user, ClientPart: Named, ClientID: clientID},
		{UserPart: Named, User: user, ClientPart: Default},
		{UserPart: Named, User: user},
		{UserPart: Default, ClientPart: Named, ClientID: clientID},
		{UserPart: Default, ClientPart: Default},
		{UserPart: Default},
		{ClientPart: Named, ClientID: clientID},
		{ClientPart: Default},
	} {
		v, ok := t.entries[e][key]
		if !ok {
			continue
		}
		m := Entity{}
		if e.UserPart != Absent {
			m.UserPart, m.User = Named, user
		}
		if e.ClientPart != Absent {
			m.ClientPart, m.ClientID = Named, clientID
		}
		return Resolved{Limit: v, Measure: m, OK: true}
	}
	return Resolved{}
}
