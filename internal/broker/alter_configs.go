package broker

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/configs"
	"github.com/chronik-go/chronik/internal/meta"
)

// configChange is a validated change to one resource's configs.
type configChange struct {
	set map[string]string
	del []string
}

// applyConfigChange validates a resource's next configs and commits them
// (unless validateOnly). It is shared by AlterConfigs (which replaces the
// whole set) and IncrementalAlterConfigs.
func (b *Broker) applyConfigChange(ctx context.Context, typ kmsg.ConfigResourceType, name string, next func(cur map[string]string) (map[string]string, *topicErr), validateOnly bool) *topicErr {
	var cur map[string]string
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		t, ok := b.node.Meta().Topic(name)
		if !ok {
			return errWith(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
		}
		cur = t.Configs
	case kmsg.ConfigResourceTypeBroker:
		if name != "" && name != strconv.Itoa(int(b.node.NodeID())) {
			return errWith(kerr.InvalidRequest, "broker %s is not this broker", name)
		}
		cur = b.node.Meta().BrokerConfigs()
	default:
		return errWith(kerr.InvalidRequest, "resource type %s is not supported", typ)
	}
	want, terr := next(maps.Clone(cur))
	if terr != nil {
		return terr
	}
	ch := configChange{set: map[string]string{}}
	for k, v := range want {
		if cv, ok := cur[k]; !ok || cv != v {
			ch.set[k] = v
		}
	}
	for k := range cur {
		if _, ok := want[k]; !ok {
			ch.del = append(ch.del, k)
		}
	}
	slices.Sort(ch.del)
	cmd := &meta.Command{Op: meta.OpAlterConfigs, Topic: name, Configs: ch.set, DeleteConfigKeys: ch.del}
	validate := configs.ValidateTopic
	if typ == kmsg.ConfigResourceTypeBroker {
		cmd = &meta.Command{Op: meta.OpAlterBrokerConfigs, Configs: ch.set, DeleteConfigKeys: ch.del}
		validate = configs.ValidateBroker
	}
	if err := validate(want); err != nil {
		return errWith(kerr.InvalidConfig, "%v", err)
	}
	if validateOnly || len(ch.set) == 0 && len(ch.del) == 0 {
		return nil
	}
	if _, err := b.node.ProposeMeta(ctx, cmd); err != nil {
		return metaErr(err)
	}
	return nil
}

// incremental applies IncrementalAlterConfigs operations to cur.
func incremental(typ kmsg.ConfigResourceType, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) func(map[string]string) (map[string]string, *topicErr) {
	return func(cur map[string]string) (map[string]string, *topicErr) {
		if cur == nil {
			cur = map[string]string{}
		}
		seen := map[string]bool{}
		for _, op := range ops {
			if seen[op.Name] {
				return nil, errWith(kerr.InvalidRequest, "config %q appears more than once", op.Name)
			}
			seen[op.Name] = true
			switch op.Op {
			case kmsg.IncrementalAlterConfigOpSet:
				if op.Value == nil {
					return nil, errWith(kerr.InvalidConfig, "config %q: null value", op.Name)
				}
				cur[op.Name] = *op.Value
			case kmsg.IncrementalAlterConfigOpDelete:
				delete(cur, op.Name)
			case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
				d, ok := configs.TopicDef(op.Name)
				if typ != kmsg.ConfigResourceTypeTopic || !ok || d.Type != configs.TypeList {
					return nil, errWith(kerr.InvalidConfig, "config %q is not a list: APPEND and SUBTRACT do not apply", op.Name)
				}
				if op.Value == nil {
					return nil, errWith(kerr.InvalidConfig, "config %q: null value", op.Name)
				}
				base, ok := cur[op.Name]
				if !ok {
					base = d.Default
				}
				cur[op.Name] = listOp(base, *op.Value, op.Op == kmsg.IncrementalAlterConfigOpAppend)
			default:
				return nil, errWith(kerr.InvalidRequest, "unknown operation %d on %q", op.Op, op.Name)
			}
		}
		return cur, nil
	}
}

// listOp appends or subtracts comma-separated items.
func listOp(base, items string, add bool) string {
	var out []string
	for _, s := range strings.Split(base, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	for _, it := range strings.Split(items, ",") {
		it = strings.TrimSpace(it)
		i := slices.Index(out, it)
		switch {
		case add && i < 0 && it != "":
			out = append(out, it)
		case !add && i >= 0:
			out = slices.Delete(out, i, i+1)
		}
	}
	return strings.Join(out, ",")
}
