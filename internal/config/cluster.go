package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Peer is one node of the cluster as the config names it: every node,
// this one included, lists the same peers.
type Peer struct {
	ID int32
	// Kafka is the address clients are given for this node (host:port).
	Kafka string
	// Raft is the address other nodes reach this node's Raft transport at.
	Raft string
	// WAL is the original Chronik's WAL replication address; accepted so
	// its files and peer lists load, not used (data replicates over the
	// Raft transport here).
	WAL string
}

// maxReplicas bounds replication_factor and min_insync_replicas as the
// original Chronik did.
const maxReplicas = 100

// defaultClusterRF is the original Chronik's replication factor when a
// cluster does not name one (capped at the number of peers).
const defaultClusterRF = 3

// fileAliases maps the original Chronik's cluster file keys (after tables
// are flattened into dotted keys) onto our settings, so its files load
// unchanged. docs/CLUSTER.md lists the same mapping (TestClusterDocMapping).
var fileAliases = map[string]string{
	"node_id":             "node.id",
	"data_dir":            "data.dir",
	"replication_factor":  "default.replication.factor",
	"min_insync_replicas": "min.insync.replicas",
	"bind.kafka":          "bind",
	"bind.metrics":        "metrics.bind",
	"bind.raft":           "raft.bind",
	"advertise.kafka":     "advertise",
	"advertise.raft":      "raft.advertise",
}

// fileIgnored are the original's keys that load but do nothing here:
// listening on them would be a promise we do not keep (see docs/CLUSTER.md).
var fileIgnored = map[string]bool{
	"bind.wal":          true,
	"bind.search":       true,
	"advertise.wal":     true,
	"advertise.metrics": true,
	"advertise.search":  true,
}

// IsCluster reports whether peers were given (otherwise the node is a
// cluster of one).
func (c *Config) IsCluster() bool { return len(c.Peers) > 0 }

// Self returns this node's entry among the peers.
func (c *Config) Self() (Peer, bool) {
	for _, p := range c.Peers {
		if p.ID == c.NodeID {
			return p, true
		}
	}
	return Peer{}, false
}

// origin says where a setting's value came from, for error messages.
func (c *Config) origin(key string) string {
	if from, ok := c.sources[key]; ok {
		return from
	}
	return "default"
}

// explicit reports whether a setting was given rather than defaulted.
func (c *Config) explicit(key string) bool {
	from, ok := c.sources[key]
	return ok && from != "default"
}

// parsePeers reads the env and flag form of the peer list:
// host:kafka:wal:raft or host:kafka:raft entries separated by commas, ids
// 1..N in list order (as the original's CHRONIK_CLUSTER_PEERS). An IPv6
// host is written in brackets.
func parsePeers(v string) ([]Peer, error) {
	var out []Peer
	n := 0
	for _, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		n++
		host, rest, ok := strings.Cut(entry, ":")
		if strings.HasPrefix(entry, "[") {
			host, rest, ok = strings.Cut(entry[1:], "]:")
		}
		ports := strings.Split(rest, ":")
		if !ok || host == "" || (len(ports) != 2 && len(ports) != 3) {
			return nil, fmt.Errorf("entry %d %q: want host:kafka:wal:raft or host:kafka:raft", n, entry)
		}
		addr := make([]string, len(ports))
		for i, p := range ports {
			if err := validPort(p); err != nil {
				return nil, fmt.Errorf("entry %d %q: %w", n, entry, err)
			}
			addr[i] = net.JoinHostPort(host, p)
		}
		p := Peer{ID: int32(n), Kafka: addr[0], Raft: addr[len(addr)-1]}
		if len(addr) == 3 {
			p.WAL = addr[1]
		}
		out = append(out, p)
	}
	if v != "" && len(out) == 0 {
		return nil, errors.New("no peer entries")
	}
	return out, nil
}

// peersFromFile reads the original's [[peers]] tables.
func peersFromFile(v any) ([]Peer, error) {
	tables, ok := v.([]map[string]any)
	if !ok {
		return nil, errors.New(`"peers" must be an array of tables ([[peers]]) or a host:kafka:wal:raft list`)
	}
	out := make([]Peer, 0, len(tables))
	for i, t := range tables {
		at := func(k string) string { return fmt.Sprintf("peers[%d].%s", i+1, k) }
		var p Peer
		for k, val := range t {
			switch k {
			case "id":
				n, ok := val.(int64)
				if !ok {
					return nil, fmt.Errorf("%s: want an integer", at(k))
				}
				if n < 1 || n > 1<<30 {
					return nil, fmt.Errorf("%s: %d out of range [1, %d]", at(k), n, 1<<30)
				}
				p.ID = int32(n)
			case "kafka", "raft", "wal":
				s, ok := val.(string)
				if !ok {
					return nil, fmt.Errorf("%s: want a \"host:port\" string", at(k))
				}
				a, err := peerAddr(s)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", at(k), err)
				}
				switch k {
				case "kafka":
					p.Kafka = a
				case "raft":
					p.Raft = a
				default:
					p.WAL = a
				}
			default:
				return nil, fmt.Errorf("peers[%d]: unknown key %q (want id, kafka, raft, wal)", i+1, k)
			}
		}
		switch {
		case p.ID == 0:
			return nil, fmt.Errorf("%s: missing", at("id"))
		case p.Kafka == "":
			return nil, fmt.Errorf("%s: missing", at("kafka"))
		case p.Raft == "":
			return nil, fmt.Errorf("%s: missing", at("raft"))
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("[[peers]] is empty")
	}
	return out, nil
}

// peerAddr checks a peer address: a host and an explicit port, since a
// peer's port cannot be guessed.
func peerAddr(v string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(v))
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", v)
	}
	if host == "" {
		return "", fmt.Errorf("%q has no host", v)
	}
	if err := validPort(port); err != nil {
		return "", fmt.Errorf("%q: %w", v, err)
	}
	return net.JoinHostPort(host, port), nil
}

// listenAddr checks a listener address that has no default port.
func listenAddr(v string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", v)
	}
	if err := validPort(port); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
}

func validPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q", p)
	}
	return nil
}

// sameAddr compares two host:port addresses, host names case-insensitively.
func sameAddr(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return strings.EqualFold(a, b)
	}
	return pa == pb && strings.EqualFold(ha, hb)
}

// overlaps reports whether two listen addresses would claim the same port
// (equal, or one of them on every interface).
func overlaps(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return wild(ha) || wild(hb) || strings.EqualFold(ha, hb)
}

// deriveCluster fills the settings whose defaults depend on the peers:
// what this node advertises and binds for Raft come from its own peer
// entry, so a peer list alone (the original's env form) is enough.
func (c *Config) deriveCluster() {
	self, ok := c.Self()
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = 1
		if c.IsCluster() {
			c.DefaultReplicationFactor = int16(min(defaultClusterRF, len(c.Peers)))
			if c.sources != nil {
				c.sources["default.replication.factor"] = "default: 3, capped at the number of peers"
			}
		}
	}
	if !ok {
		return
	}
	if c.Advertise == "" {
		c.Advertise = self.Kafka
	}
	if c.sources != nil && c.sources["bind"] == "default" {
		// Like raft.bind: the port of this node's own peer entry, so that
		// three nodes on one machine need nothing but the peer list.
		_, port, _ := net.SplitHostPort(self.Kafka)
		c.Bind = net.JoinHostPort("0.0.0.0", port)
		c.sources["bind"] = "default: 0.0.0.0 and the port of this node's peer kafka address"
	}
	if c.RaftBind == "" {
		_, port, _ := net.SplitHostPort(self.Raft)
		c.RaftBind = net.JoinHostPort("0.0.0.0", port)
	}
	if c.RaftAdvertise == "" {
		c.RaftAdvertise = self.Raft
	}
}

// validateCluster checks the relations among the cluster settings; every
// message names the setting and where its value came from.
func (c *Config) validateCluster() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("invalid %s (%s): %s", key, c.origin(key), fmt.Sprintf(format, args...))
	}
	rf, minISR := int(c.DefaultReplicationFactor), int(c.MinInsyncReplicas)
	if rf < 1 || rf > maxReplicas {
		return bad("default.replication.factor", "%d out of range [1, %d]", rf, maxReplicas)
	}
	if minISR < 1 || minISR > maxReplicas {
		return bad("min.insync.replicas", "%d out of range [1, %d]", minISR, maxReplicas)
	}
	if minISR > rf {
		return bad("min.insync.replicas", "%d is larger than default.replication.factor %d (%s)", minISR, rf, c.origin("default.replication.factor"))
	}
	if !c.IsCluster() {
		if rf > 1 {
			return bad("default.replication.factor", "%d needs peers: without them this node is a cluster of one", rf)
		}
		return nil
	}
	if rf > len(c.Peers) {
		return bad("default.replication.factor", "%d is larger than the number of peers (%d)", rf, len(c.Peers))
	}
	ids := map[int32]bool{}
	used := map[string]string{} // lower-cased address → which peer field holds it
	for i, p := range c.Peers {
		if p.ID < 1 {
			return bad("peers", "entry %d: id %d: ids start at 1", i+1, p.ID)
		}
		if ids[p.ID] {
			return bad("peers", "id %d appears twice", p.ID)
		}
		ids[p.ID] = true
		for _, a := range []struct{ kind, addr string }{{"kafka", p.Kafka}, {"raft", p.Raft}, {"wal", p.WAL}} {
			if a.addr == "" {
				if a.kind != "wal" {
					return bad("peers", "peer %d has no %s address", p.ID, a.kind)
				}
				continue
			}
			if _, err := peerAddr(a.addr); err != nil {
				return bad("peers", "peer %d %s address: %v", p.ID, a.kind, err)
			}
			k := strings.ToLower(a.addr)
			if prev, dup := used[k]; dup {
				return bad("peers", "%s address %s of peer %d is already the %s", a.kind, a.addr, p.ID, prev)
			}
			used[k] = fmt.Sprintf("%s address of peer %d", a.kind, p.ID)
		}
	}
	self, ok := c.Self()
	if !ok {
		return bad("node.id", "%d is not among the peers (%s)", c.NodeID, c.origin("peers"))
	}
	if c.RaftBind == "" {
		return bad("raft.bind", "must be set when peers are given")
	}
	if overlaps(c.RaftBind, c.Bind) {
		return bad("raft.bind", "%s collides with bind %s (%s)", c.RaftBind, c.Bind, c.origin("bind"))
	}
	// A node that advertised one address while its peers list another
	// would be named differently depending on which node a client asked:
	// refuse it rather than warn, since clients would reconnect in circles.
	if c.explicit("advertise") && !sameAddr(c.Advertise, self.Kafka) {
		return bad("advertise", "%s does not match this node's peer entry (id %d, kafka %s)", c.Advertise, self.ID, self.Kafka)
	}
	if c.RaftAdvertise != "" && !sameAddr(c.RaftAdvertise, self.Raft) {
		return bad("raft.advertise", "%s does not match this node's peer entry (id %d, raft %s)", c.RaftAdvertise, self.ID, self.Raft)
	}
	return nil
}
