package broker

// DescribeConfigs (key 32), versions 0–4.
//
// Topic resources list every topic config Chronik serves with its effective
// value and source (topic override, dynamic broker default, static broker
// setting, Kafka default), synonyms when asked (v1+), types and
// documentation (v3+). Broker resources (this broker's id, or "" for the
// cluster-wide dynamic defaults) list the broker settings, dynamic ones
// marked writable. Deliberate gaps: broker-logger resources are refused
// (INVALID_REQUEST); nothing is sensitive because nothing secret is a
// config. Version 0 reports a default by is_default instead of a source.

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/chronik-go/chronik/internal/configs"
	"github.com/chronik-go/chronik/internal/protocol"
)

func (b *Broker) handleDescribeConfigs(_ context.Context, _ *conn, h *protocol.Header, r kmsg.Request) result {
	req := r.(*kmsg.DescribeConfigsRequest)
	resp := kmsg.NewPtrDescribeConfigsResponse()
	resp.SetVersion(h.Version)
	res := b.resolver()
	for _, rr := range req.Resources {
		out := kmsg.DescribeConfigsResponseResource{ResourceType: rr.ResourceType, ResourceName: rr.ResourceName}
		wanted := func(name string) bool {
			if rr.ConfigNames == nil {
				return true
			}
			for _, n := range rr.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, ok := b.node.Meta().Topic(rr.ResourceName)
			if !ok {
				out.ErrorCode = kerr.UnknownTopicOrPartition.Code
				out.ErrorMessage = strp("topic " + strconv.Quote(rr.ResourceName) + " does not exist")
				break
			}
			for _, d := range configs.TopicDefs() {
				if !wanted(d.Name) {
					continue
				}
				v, src, _ := res.Topic(t.Configs, d.Name)
				c := kmsg.DescribeConfigsResponseResourceConfig{Name: d.Name, Value: strp(v), Source: kmsg.ConfigSource(src),
					IsDefault: src == configs.SourceDefault, ConfigType: kmsg.ConfigType(d.Type)}
				if req.IncludeDocumentation && d.Doc != "" {
					c.Documentation = strp(d.Doc)
				}
				if req.IncludeSynonyms {
					c.ConfigSynonyms = topicSynonyms(res, t.Configs, d)
				}
				out.Configs = append(out.Configs, c)
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.node.NodeID())) {
				out.ErrorCode = kerr.InvalidRequest.Code
				out.ErrorMessage = strp("broker " + rr.ResourceName + " is not this broker; ask it directly")
				break
			}
			dyn := b.node.Meta().BrokerConfigs()
			for _, d := range configs.BrokerDefs() {
				if !wanted(d.Name) {
					continue
				}
				v, src, _ := res.Broker(d.Name)
				if rr.ResourceName == "" {
					// The cluster-wide default resource holds only what was set.
					dv, ok := dyn[d.Name]
					if !ok {
						continue
					}
					v, src = dv, configs.SourceDynamicBroker
				}
				out.Configs = append(out.Configs, kmsg.DescribeConfigsResponseResourceConfig{Name: d.Name, Value: strp(v),
					Source: kmsg.ConfigSource(src), ReadOnly: !d.Dynamic, ConfigType: kmsg.ConfigType(d.Type)})
			}
		default:
			out.ErrorCode = kerr.InvalidRequest.Code
			out.ErrorMessage = strp("resource type " + rr.ResourceType.String() + " is not supported")
		}
		resp.Resources = append(resp.Resources, out)
	}
	return result{resp: resp}
}

// topicSynonyms lists where a topic config's value could come from, most
// specific first, as Kafka does.
func topicSynonyms(res configs.Resolver, overrides map[string]string, d configs.Def) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	var out []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	if v, ok := overrides[d.Name]; ok {
		out = append(out, kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: d.Name, Value: strp(v), Source: kmsg.ConfigSource(configs.SourceTopic)})
	}
	if d.Broker != "" {
		if v, ok := res.Dynamic[d.Broker]; ok {
			out = append(out, kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: d.Broker, Value: strp(v), Source: kmsg.ConfigSource(configs.SourceDynamicBroker)})
		}
		if def, ok := configs.BrokerDefByName(d.Broker); ok {
			v, _, _ := configs.Resolver{Static: res.Static}.Broker(def.Name)
			out = append(out, kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: d.Broker, Value: strp(v), Source: kmsg.ConfigSource(configs.SourceStaticBroker)})
		}
	}
	// Kafka names the default by its broker config (log.retention.hours
	// for retention.ms), in that config's unit.
	name, v := d.Name, d.Default
	if d.Synonym != "" {
		name = d.Synonym
	}
	if d.SynonymDefault != "" {
		v = d.SynonymDefault
	}
	out = append(out, kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: name, Value: strp(v), Source: kmsg.ConfigSource(configs.SourceDefault)})
	return out
}
