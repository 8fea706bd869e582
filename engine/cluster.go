package engine

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/meter"
)

// Membership timings: a node publishes its heartbeat every heartbeatEvery and
// is dropped by the others when none arrived for nodeTimeout, checked every
// nodeCheckEvery: a node that dies is dropped 1.5 to 2.6 s after its death,
// and a live one would have to miss two heartbeats and then some.
const (
	heartbeatEvery = time.Second
	nodeTimeout    = 2500 * time.Millisecond
	nodeCheckEvery = 100 * time.Millisecond
)

// NodeInfo is one node as the cluster sees it: its addresses and its latest
// meter reading, published about once a second.
type NodeInfo struct {
	Name    string        `json:"name"`
	HTTP    string        `json:"http,omitempty"`
	NATS    string        `json:"nats,omitempty"`
	Cluster string        `json:"cluster,omitempty"`
	Started time.Time     `json:"started"`
	Reading meter.Reading `json:"reading"`
	// Seen is when this node last received the heartbeat; Age its age.
	Seen time.Time     `json:"seen"`
	Age  time.Duration `json:"age_ns"`
}

// heartbeatPrefix is the core NATS subject of heartbeats: drover.nodes.<name>.
// Heartbeats are plain messages, not a replicated bucket, so that a
// JetStream leader election after a crash cannot silence healthy nodes.
const heartbeatPrefix = "drover.nodes."

// heartbeat publishes this node's NodeInfo until ctx ends.
func (n *Node) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		data, _ := encodeJSON(n.selfInfo(n.publishReading()))
		if err := n.bus.Publish(heartbeatPrefix+n.opts.Name, nil, data); err != nil && ctx.Err() == nil {
			n.log.Warn().Err(err).Msg("heartbeat")
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// watchNodes keeps the snapshot of live nodes from their heartbeats and drops
// a node whose last heartbeat is older than nodeTimeout.
func (n *Node) watchNodes(ctx context.Context) {
	stop, err := n.bus.Subscribe(heartbeatPrefix+"*", func(m bus.Msg) {
		var info NodeInfo
		if json.Unmarshal(m.Data, &info) != nil || info.Name == "" {
			return
		}
		info.Seen = time.Now()
		n.nodesMu.Lock()
		_, known := n.nodes[info.Name]
		n.nodes[info.Name] = info
		n.nodesMu.Unlock()
		if info.Name != n.opts.Name {
			if n.view != nil {
				n.view.Put(info.Reading)
			}
			n.notePeerBindings(info.Reading)
		}
		if !known {
			n.log.Info().Str("peer", info.Name).Msg("node joined")
		}
	})
	if err != nil {
		n.log.Error().Err(err).Msg("watch nodes")
		return
	}
	defer stop()
	check := time.NewTicker(nodeCheckEvery)
	defer check.Stop()
	for {
		select {
		case <-check.C:
			var lost []string
			n.nodesMu.Lock()
			for name, info := range n.nodes {
				if name != n.opts.Name && time.Since(info.Seen) > nodeTimeout {
					delete(n.nodes, name)
					lost = append(lost, name)
				}
			}
			n.nodesMu.Unlock()
			for _, name := range lost {
				if n.view != nil {
					n.view.Delete(name)
				}
				n.log.Warn().Str("peer", name).Dur("silent", nodeTimeout).Msg("node lost: no heartbeat")
				n.nodeLost(name)
			}
		case <-ctx.Done():
			return
		}
	}
}

// publishReading reads the meter (once per heartbeat: CPU is measured between
// reads), keeps the reading for Nodes, and feeds this node's placement view.
func (n *Node) publishReading() meter.Reading {
	r := n.meter.Read()
	n.lastReading.Store(&r)
	if n.view != nil {
		n.view.Put(r)
	}
	return r
}

func (n *Node) selfInfo(r meter.Reading) NodeInfo {
	return NodeInfo{Name: n.opts.Name, HTTP: n.opts.AdvertiseHTTP, NATS: n.bus.ClientURL(), Cluster: n.bus.ClusterURL(), Started: n.started, Reading: r}
}

// Nodes returns the live nodes, by name.
func (n *Node) Nodes(ctx context.Context) ([]NodeInfo, error) {
	n.nodesMu.Lock()
	out := make([]NodeInfo, 0, len(n.nodes))
	for _, info := range n.nodes {
		info.Age = time.Since(info.Seen)
		out = append(out, info)
	}
	n.nodesMu.Unlock()
	if len(out) == 0 { // before the first heartbeat arrives: this node alone
		info := n.selfInfo(*n.lastReading.Load())
		info.Seen = time.Now()
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// nodeLost is called when a peer stops heartbeating. Runs it coordinated and
// steps dispatched to it are taken over (see adoptOrphans and redispatch).
func (n *Node) nodeLost(name string) {
	n.lostMu.Lock()
	for _, ch := range n.lostWaiters[name] {
		close(ch)
	}
	delete(n.lostWaiters, name)
	n.lostMu.Unlock()
	go n.adoptOrphans(name)
}

// lostSignal returns a channel closed when node is declared lost.
func (n *Node) lostSignal(node string) <-chan struct{} {
	ch := make(chan struct{})
	n.nodesMu.Lock()
	_, live := n.nodes[node]
	known := len(n.nodes)
	n.nodesMu.Unlock()
	if !live && known > 0 { // already dropped (or never seen in a cluster)
		close(ch)
		return ch
	}
	n.lostMu.Lock()
	defer n.lostMu.Unlock()
	n.lostWaiters[node] = append(n.lostWaiters[node], ch)
	return ch
}

// adoptOrphans takes over the unfinished runs a lost node coordinated. Every
// surviving node tries; a claim key (create-only) lets exactly one adopt each.
func (n *Node) adoptOrphans(dead string) {
	ctx, cancel := context.WithTimeout(n.baseCtx, 2*time.Minute)
	defer cancel()
	var runs []Run
	for { // the cluster may be electing stream leaders after the loss
		var err error
		if runs, err = n.runningRuns(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			n.log.Error().Err(err).Str("lost", dead).Msg("list runs of lost node")
			return
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	claims := n.bus.Bucket(bus.NodesBucket)
	for _, rec := range runs {
		if rec.Coordinator != dead {
			continue
		}
		key := "claim." + rec.ID + "." + bus.EncodeKey(dead)
		if _, err := claims.Create(ctx, key, []byte(n.opts.Name)); err != nil {
			if v, _, gerr := claims.Get(ctx, key); gerr != nil || string(v) != n.opts.Name {
				continue // another node claimed it
			}
		}
		n.log.Info().Str("run", rec.ID).Str("from", dead).Msg("adopting run of lost node")
		for { // this node holds the claim: nobody else will adopt the run
			err := n.adopt(ctx, rec.ID)
			if err == nil || errors.Is(err, ErrClosed) {
				break
			}
			if ctx.Err() != nil {
				n.log.Error().Err(err).Str("run", rec.ID).Msg("adopt run of lost node; it stays unfinished until a node restarts or ctl runs resume")
				break
			}
			n.log.Warn().Err(err).Str("run", rec.ID).Msg("adopt run of lost node; trying again")
			t := time.NewTimer(time.Second)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
}

// runningRuns returns every run the index says is running, from its status
// keys (read through the stream leader) and records: no windowed scan, which
// depends on replicas answering direct gets right after a node loss.
func (n *Node) runningRuns(ctx context.Context) ([]Run, error) {
	kv := n.bus.Bucket(bus.RunsBucket)
	keys, err := kv.StoredKeys(ctx, statusKey(StatusRunning, "*"))
	if err != nil {
		return nil, err
	}
	var runs []Run
	for _, key := range keys {
		id := key[strings.LastIndexByte(key, '.')+1:]
		rec, err := n.record(ctx, id)
		if err != nil {
			if errors.Is(err, ErrUnknownRun) {
				continue
			}
			return nil, err
		}
		if rec.Status == StatusRunning {
			runs = append(runs, *rec)
		}
	}
	return runs, nil
}

// notePeerBindings keeps the bindings of resources that peers declare and
// this node does not, so that this node, coordinating, counts them in a
// step's demands (see demands). Bindings are only added: a resource no live
// node declares does not limit placement.
func (n *Node) notePeerBindings(r meter.Reading) {
	for name, st := range r.Resources {
		if len(st.Builtins) == 0 || n.meter.Resources.Limiter(name) != nil {
			continue
		}
		spec := meter.ResourceSpec{Name: name, Kind: st.Kind, Scope: st.Scope, Builtins: st.Builtins, Hosts: st.Hosts}
		n.peerMu.Lock()
		known := slices.ContainsFunc(n.peerSpecs, func(s meter.ResourceSpec) bool {
			return s.Name == name && slices.Equal(s.Builtins, spec.Builtins) && slices.Equal(s.Hosts, spec.Hosts)
		})
		if !known {
			specs := slices.DeleteFunc(slices.Clone(n.peerSpecs), func(s meter.ResourceSpec) bool { return s.Name == name })
			specs = append(specs, spec)
			n.peerSpecs = specs
			n.peerBindings.Store(&specs) // a new slice each time: readers hold theirs

		}
		n.peerMu.Unlock()
	}
}
