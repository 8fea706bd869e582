// Package cluster keeps a node's view of the cluster: it publishes the
// node's heartbeat (its addresses and meter reading) about once a second,
// follows its peers' heartbeats, declares a peer lost when its heartbeats
// stop, and arbitrates which survivor adopts each run of a lost node (Claim).
//
// Heartbeats are core NATS messages, not a replicated bucket, so that a
// JetStream leader election after a crash cannot silence healthy nodes.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/breaker"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/starlark/builtins"
)

// Default timings: a node publishes its heartbeat every HeartbeatEvery and
// is dropped by the others when none arrived for NodeTimeout, checked every
// checkEvery: a node that dies is dropped 1.5 to 2.6 s after its death, and a
// live one would have to miss two heartbeats and then some.
const (
	HeartbeatEvery = time.Second
	NodeTimeout    = 2500 * time.Millisecond
	checkEvery     = 100 * time.Millisecond
	// beatGap is the shortest time between two heartbeats: Beat asks for one
	// at once, but no more often than this.
	beatGap = 20 * time.Millisecond
)

// Options configures a Membership.
type Options struct {
	// Bus carries the heartbeats and holds the claims bucket.
	Bus *bus.Bus
	// Name is this node's name; HTTP its API's URL, published to peers.
	Name string
	HTTP string
	// Features are what this node's build understands (api.NodeInfo.Features).
	Features []string
	// Reading reads this node's meter, once per heartbeat.
	Reading func() meter.Reading
	// Integrations returns the states of this node's integrations, for its
	// heartbeats (nil: none).
	Integrations func() []builtins.IntegrationStatus
	// Breakers returns this node's circuit breakers that are not closed and
	// clear, for its heartbeats (nil: none).
	Breakers func() []breaker.Status
	// OnPeer is called with every heartbeat's reading of a peer.
	OnPeer func(meter.Reading)
	// OnLost is called, on its own goroutine, when a peer stops heartbeating.
	OnLost func(node string)
	// Logger receives joins, losses and heartbeat failures (default: none).
	Logger *zerolog.Logger
	// HeartbeatEvery and NodeTimeout override the default timings; a zero
	// NodeTimeout is 2.5 heartbeats.
	HeartbeatEvery time.Duration
	NodeTimeout    time.Duration
	// Upgrades are changes to what the nodes share that this build makes
	// once every node has a feature.
	Upgrades []Upgrade
}

// An Upgrade is a change to what the nodes share (a stream's configuration,
// say) that nodes of an earlier build would not understand: Apply is called
// once every live node announces Feature, and this node has been up for a
// NodeTimeout (so that it has heard every live node); it is tried again each
// heartbeat until it succeeds. Each node applies it: Apply must be
// idempotent.
type Upgrade struct {
	Feature string
	Apply   func(context.Context) error
}

// Membership is this node's view of the live nodes. It is safe for
// concurrent use.
type Membership struct {
	opts    Options
	log     zerolog.Logger
	started time.Time
	last    atomic.Pointer[meter.Reading] // this node's latest reading
	beat    chan struct{}                 // asks for a heartbeat now

	placedMu sync.Mutex
	placed   [api.PlacementsKept]api.PlacementDecision // a ring of the latest decisions
	nplaced  int                                       // decisions noted so far

	mu      sync.Mutex
	nodes   map[string]api.NodeInfo    // live nodes from their heartbeats
	waiters map[string][]chan struct{} // closed when that node is lost
}

// New returns the membership of node opts.Name; Run starts it.
func New(opts Options) *Membership {
	if opts.HeartbeatEvery <= 0 {
		opts.HeartbeatEvery = HeartbeatEvery
	}
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = opts.HeartbeatEvery * NodeTimeout / HeartbeatEvery
	}
	m := &Membership{opts: opts, log: zerolog.Nop(), started: time.Now().UTC(), beat: make(chan struct{}, 1),
		nodes: map[string]api.NodeInfo{}, waiters: map[string][]chan struct{}{}}
	if opts.Logger != nil {
		m.log = *opts.Logger
	}
	r := opts.Reading()
	m.last.Store(&r)
	return m
}

// Run publishes heartbeats and follows the peers' until ctx ends. It returns
// once it follows them.
func (m *Membership) Run(ctx context.Context) error {
	stop, err := m.opts.Bus.Subscribe(bus.NodeSubject("*"), m.onHeartbeat)
	if err != nil {
		return err
	}
	go m.publish(ctx)
	go m.record(ctx, "joined/"+m.opts.Name+"/"+strconv.FormatInt(m.started.UnixNano(), 10),
		api.ClusterEvent{Time: m.started, Kind: api.EventNodeJoined, Node: m.opts.Name, Detail: m.opts.HTTP})
	go func() {
		defer stop()
		m.check(ctx)
	}()
	if len(m.opts.Upgrades) > 0 {
		go m.upgrade(ctx)
	}
	return nil
}

// upgrade applies the upgrades, each once every live node has its feature,
// until all are applied or ctx ends.
func (m *Membership) upgrade(ctx context.Context) {
	pending := slices.Clone(m.opts.Upgrades)
	settle := time.NewTimer(m.opts.NodeTimeout)
	defer settle.Stop()
	select {
	case <-settle.C:
	case <-ctx.Done():
		return
	}
	t := time.NewTicker(m.opts.HeartbeatEvery)
	defer t.Stop()
	said := map[string]string{} // the last failure of each feature, said once
	for len(pending) > 0 {
		pending = slices.DeleteFunc(pending, func(u Upgrade) bool {
			if !m.AllHave(u.Feature) {
				return false
			}
			if err := u.Apply(ctx); err != nil {
				if said[u.Feature] != err.Error() {
					said[u.Feature] = err.Error()
					m.log.Warn().Err(err).Str("feature", u.Feature).Msg("upgrade: every node has the feature, but applying it failed; trying again")
				}
				return false
			}
			m.log.Debug().Str("feature", u.Feature).Msg("upgrade applied: every node has the feature")
			return true
		})
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// publish sends this node's heartbeat every HeartbeatEvery, and at once
// when Beat asks, until ctx ends.
func (m *Membership) publish(ctx context.Context) {
	t := time.NewTicker(m.opts.HeartbeatEvery)
	defer t.Stop()
	for {
		r := m.opts.Reading()
		m.last.Store(&r)
		data, _ := api.EncodeJSON(m.info(r))
		if err := m.opts.Bus.Publish(bus.NodeSubject(m.opts.Name), nil, data); err != nil && ctx.Err() == nil {
			m.log.Warn().Err(err).Msg("heartbeat")
		}
		sent := time.Now()
		select {
		case <-t.C:
		case <-m.beat: // at once, unless the last one went out less than beatGap ago
			if wait := beatGap - time.Since(sent); wait > 0 {
				gap := time.NewTimer(wait)
				select {
				case <-gap.C:
				case <-ctx.Done():
					gap.Stop()
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// Beat asks for a heartbeat now rather than at the next tick (within 20 ms of
// the previous heartbeat at the soonest): the node's resources changed in a
// way peers wait for, such as pool units given back.
func (m *Membership) Beat() {
	select {
	case m.beat <- struct{}{}:
	default:
	}
}

func (m *Membership) info(r meter.Reading) api.NodeInfo {
	info := api.NodeInfo{Name: m.opts.Name, HTTP: m.opts.HTTP, NATS: m.opts.Bus.ClientURL(), Cluster: m.opts.Bus.ClusterURL(), Started: m.started, Reading: r, Features: m.opts.Features}
	if m.opts.Integrations != nil {
		info.Integrations = m.opts.Integrations()
	}
	if m.opts.Breakers != nil {
		info.Breakers = m.opts.Breakers()
	}
	info.Placements = m.placements()
	return info
}

// NotePlacement keeps d among this node's latest placement decisions,
// which its heartbeats announce.
func (m *Membership) NotePlacement(d api.PlacementDecision) {
	m.placedMu.Lock()
	m.placed[m.nplaced%len(m.placed)] = d
	m.nplaced++
	m.placedMu.Unlock()
}

// placements returns the latest placement decisions, newest first.
func (m *Membership) placements() []api.PlacementDecision {
	m.placedMu.Lock()
	defer m.placedMu.Unlock()
	n := min(m.nplaced, len(m.placed))
	out := make([]api.PlacementDecision, n)
	for i := range n {
		out[i] = m.placed[(m.nplaced-1-i)%len(m.placed)]
	}
	return out
}

func (m *Membership) onHeartbeat(msg bus.Msg) {
	var info api.NodeInfo
	if json.Unmarshal(msg.Data, &info) != nil || info.Name == "" {
		return
	}
	info.Seen = time.Now()
	m.mu.Lock()
	_, known := m.nodes[info.Name]
	m.nodes[info.Name] = info
	m.mu.Unlock()
	if info.Name != m.opts.Name && m.opts.OnPeer != nil {
		m.opts.OnPeer(info.Reading)
	}
	if !known {
		m.log.Info().Str("peer", info.Name).Msg("node joined")
	}
}

// check drops a node whose last heartbeat is older than NodeTimeout, until
// ctx ends.
func (m *Membership) check(ctx context.Context) {
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			var lost []string
			m.mu.Lock()
			for name, info := range m.nodes {
				if name != m.opts.Name && time.Since(info.Seen) > m.opts.NodeTimeout {
					delete(m.nodes, name)
					lost = append(lost, name)
					// Every survivor records the loss, under one id.
					go m.record(ctx, "lost/"+name+"/"+strconv.FormatInt(info.Started.UnixNano(), 10), api.ClusterEvent{
						Time: time.Now().UTC(), Kind: api.EventNodeLost, Node: name,
						Detail: fmt.Sprintf("no heartbeat for %s; last seen %s", m.opts.NodeTimeout, info.Seen.UTC().Format(time.RFC3339))})
				}
			}
			for _, name := range lost {
				for _, ch := range m.waiters[name] {
					close(ch)
				}
				delete(m.waiters, name)
			}
			m.mu.Unlock()
			for _, name := range lost {
				m.log.Warn().Str("peer", name).Dur("silent", m.opts.NodeTimeout).Msg("node lost: no heartbeat")
				if m.opts.OnLost != nil {
					go m.opts.OnLost(name)
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// record publishes a cluster event under id (bus.PublishClusterEvent),
// logging a failure: the event is history, not state.
func (m *Membership) record(ctx context.Context, id string, ev api.ClusterEvent) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.opts.Bus.PublishClusterEvent(ctx, id, ev); err != nil && ctx.Err() == nil {
		m.log.Warn().Err(err).Str("event", ev.Kind).Str("node", ev.Node).Msg("record cluster event")
	}
}

// RecordAdoption records that this node adopted run from node from (why:
// the run's status before, e.g. "running" after a loss, "blocked" on a
// resume).
func (m *Membership) RecordAdoption(ctx context.Context, run, from, why string) {
	now := time.Now().UTC()
	m.record(ctx, "adopted/"+run+"/"+strconv.FormatInt(now.UnixNano(), 10),
		api.ClusterEvent{Time: now, Kind: api.EventAdopted, Node: m.opts.Name, Run: run, From: from, Detail: why})
}

// Nodes returns the live nodes, by name; before the first heartbeat arrives,
// this node alone.
func (m *Membership) Nodes() []api.NodeInfo {
	m.mu.Lock()
	out := make([]api.NodeInfo, 0, len(m.nodes))
	for _, info := range m.nodes {
		info.Age = time.Since(info.Seen)
		out = append(out, info)
	}
	m.mu.Unlock()
	if len(out) == 0 {
		info := m.info(*m.last.Load())
		info.Seen = time.Now()
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AllHave reports whether this node and every live node have feature.
func (m *Membership) AllHave(feature string) bool {
	if !slices.Contains(m.opts.Features, feature) {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, info := range m.nodes {
		if !slices.Contains(info.Features, feature) {
			return false
		}
	}
	return true
}

// IsLive reports whether node is this node or one whose heartbeats arrive.
func (m *Membership) IsLive(node string) bool {
	if node == m.opts.Name {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.nodes[node]
	return ok
}

// Lost returns a channel closed when node is declared lost: at once if it
// was dropped already (or, in a cluster, never seen). Call release once the
// channel is no longer watched.
func (m *Membership) Lost(node string) (lost <-chan struct{}, release func()) {
	ch := make(chan struct{})
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, live := m.nodes[node]; !live && len(m.nodes) > 0 {
		close(ch)
		return ch, func() {}
	}
	m.waiters[node] = append(m.waiters[node], ch)
	return ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		ws := m.waiters[node]
		if i := slices.Index(ws, ch); i >= 0 {
			m.waiters[node] = slices.Delete(ws, i, i+1)
		}
		if len(m.waiters[node]) == 0 {
			delete(m.waiters, node)
		}
	}
}

// claimKey is the key of the claim on run, coordinated by the lost node dead.
func claimKey(run, dead string) string { return "claim." + run + "." + bus.EncodeKey(dead) }

// Claim decides which survivor adopts run, coordinated by the lost node dead:
// every survivor asks, and exactly one (the first to write the create-only
// claim, or the one it names when a write's answer was lost) is told true.
// Claims expire after bus.NodesTTL.
func (m *Membership) Claim(ctx context.Context, run, dead string) (bool, error) {
	claims := m.opts.Bus.Bucket(bus.NodesBucket)
	key := claimKey(run, dead)
	if _, err := claims.Create(ctx, key, []byte(m.opts.Name)); err == nil {
		return true, nil
	}
	// Taken, or the answer was lost (this node's own claim may have been
	// stored): the claim says who.
	v, _, err := claims.Get(ctx, key)
	if err != nil {
		return false, err
	}
	return string(v) == m.opts.Name, nil
}
