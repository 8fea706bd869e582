package placement

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Options configures Adaptive. The zero value works.
type Options struct {
	// Now is the clock (default time.Now); Rand the randomness (default
	// seeded from the clock). The simulator passes virtual time and a seeded
	// generator, so that a run is reproducible.
	Now  func() time.Time
	Rand *rand.Rand
	// MaxWait bounds how long a step waits for a node when none can take it,
	// before it fails with ErrNoNode (default 30s).
	MaxWait time.Duration
	// Retry is how often a waiting step looks again when no refill time is
	// known, e.g. for a pool (default 50ms); a new reading also wakes it.
	Retry time.Duration
	// DispatchCost is the bonus of the coordinator's own node: the dispatch
	// hop a co-located step saves (default 200µs).
	DispatchCost time.Duration
	// Locality is the bonus of the node holding a step's data
	// (Request.Prefer): the transfer it saves (default 100ms).
	Locality time.Duration
	// Alpha is the weight of a new sample in the profiles' moving averages
	// (default 0.2).
	Alpha float64
	// Default is the profile assumed for a builtin never observed
	// (default 10ms wall, 10ms CPU, no memory).
	Default Profile
	// MemoryReserve is the fraction of a node's memory never planned for
	// (default 0.05).
	MemoryReserve float64
	// Choices is how many nodes are sampled per decision, besides the
	// coordinator and the preferred node (default 2: power of two choices;
	// at most 8).
	Choices int
	// Coordinators fixes how many coordinators' worth of placements a
	// coordinator's own reservations stand for. Until a node's next reading,
	// a coordinator counts the cores and memory it placed there that many
	// times, assuming the others placed there as it did: without it every
	// coordinator sees the same stale reading and piles onto the node that
	// looked lightest. Zero (the default) estimates it from the readings:
	// all nodes' placement rates over this coordinator's own
	// (NodeState.Placing), or the number of live nodes before any rate is
	// known.
	Coordinators int
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		seed := uint64(time.Now().UnixNano())
		o.Rand = rand.New(rand.NewPCG(seed, seed>>17|1))
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 50 * time.Millisecond
	}
	if o.DispatchCost <= 0 {
		o.DispatchCost = 200 * time.Microsecond
	}
	if o.Locality <= 0 {
		o.Locality = 100 * time.Millisecond
	}
	if o.Default.Wall <= 0 {
		o.Default = Profile{Wall: 10 * time.Millisecond, CPU: 10 * time.Millisecond}
	}
	if o.MemoryReserve <= 0 || o.MemoryReserve >= 1 {
		o.MemoryReserve = 0.05
	}
	if o.Choices <= 0 {
		o.Choices = 2
	}
	o.Choices = min(o.Choices, 8)
	return o
}

// Adaptive is the production policy. For each step it:
//
//  1. predicts the step's cost from its builtin's profile (learned by
//     Observe from completed steps), or from the hints the step declares
//     (meter.CPU, meter.Memory) until the builtin has been measured;
//  2. keeps the live nodes that can take it, as hard constraints: every
//     custom resource it demands has units there — the last reading's free
//     units, refilled at the bucket's rate since, less the steps waiting for
//     them and this coordinator's reservations (a cluster- or group-scoped
//     resource is read from the freshest reading of its scope); a node
//     without a resource that other nodes declare cannot take a step
//     demanding it; and its predicted memory fits;
//  3. samples two of them with probability proportional to their cores
//     (power of two choices), adds the coordinator's own node while it has a
//     free core for the step, and the node holding the step's data;
//  4. scores each candidate by the step's predicted completion time there:
//     its computing time stretched by the node's predicted load (the largest
//     of measured CPU, runnable tasks and profiled executing steps, aged
//     since the reading, plus reservations, plus the step itself, per core),
//     with pressure from memory and from nearly empty buckets, plus the
//     dispatch hop unless co-located and the transfer unless data-local; the
//     lowest score wins;
//  5. reserves what it placed on the chosen node until a newer reading of
//     that node shows it.
//
// When no node can take a step, Place waits (counted by Waiting) until one
// can or MaxWait passes, then fails with a *NoNodeError wrapping ErrNoNode.
// TryPlace is the same decision without the wait, for callers (such as the
// simulator) that keep their own clock. Adaptive is safe for concurrent use.
//
// TryPlace (adaptive.go) runs the stages in that order, each in its own file:
// predict.go (1), feasible.go (2), score.go (3 and 4), reserve.go (5); the
// wait is in queue.go, the texts of reasons and errors in reason.go.
type Adaptive struct {
	view     View
	opts     Options
	profiles *Profiles
	changed  func() <-chan struct{}

	mu     sync.Mutex
	rng    *rand.Rand
	per    map[string]*perNode
	shared map[sharedKey][]sharedResv
	queue  map[string]int
	calls  uint64
	s      scratch
}

// NewAdaptive returns the production policy reading view.
func NewAdaptive(view View, opts Options) *Adaptive {
	opts = opts.withDefaults()
	a := &Adaptive{view: view, opts: opts, profiles: NewProfiles(opts.Alpha), rng: opts.Rand,
		per: map[string]*perNode{}, shared: map[sharedKey][]sharedResv{}, queue: map[string]int{}}
	if n, ok := view.(interface{ Changed() <-chan struct{} }); ok {
		a.changed = n.Changed
	}
	return a
}

// Observe learns from a completed step (or failed attempt) of builtin: its
// wall time, CPU time and memory (negative: not measured).
func (a *Adaptive) Observe(builtin string, wall, cpu time.Duration, mem int64) {
	a.profiles.Observe(builtin, wall, cpu, mem)
}

// Profiles returns what the policy has learned.
func (a *Adaptive) Profiles() *Profiles { return a.profiles }

// TryPlace decides without waiting. It returns a decision; or a non-nil
// *Queued when no node can take the step yet (ask again after Retry, passing
// the same since: when the step started waiting); or an error wrapping
// ErrNoNode when the step has waited MaxWait or can never be placed.
func (a *Adaptive) TryPlace(req Request, since time.Time) (Decision, *Queued, error) {
	nodes := a.view.Nodes()
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calls++; a.calls%1024 == 0 {
		a.sweep(nodes)
	}
	if len(nodes) == 0 {
		if req.Coordinator != "" {
			return Decision{Node: req.Coordinator, Reason: "drover: " + req.Coordinator + " (co-located: no meter readings yet)"}, nil, nil
		}
		return Decision{}, nil, &NoNodeError{Builtin: req.Builtin, Detail: "no live node"}
	}
	pred := a.predict(req)
	s := &a.s
	s.coord, s.coords = req.Coordinator, float64(a.opts.Coordinators)
	if s.coords <= 0 {
		s.coords = coordinators(nodes, req.Coordinator)
	}
	a.collectDemands(req.Demands, nodes)

	total := a.feasible(nodes, now, pred)
	if len(s.elig) == 0 {
		return a.queued(req, nodes, now, since)
	}
	best := a.choose(req, nodes, now, pred, total)
	chosen := s.cand[best]
	n := &nodes[chosen.node]
	a.reserve(n, now, pred, chosen.load)

	d := Decision{Node: n.Node, Score: chosen.score, Load: chosen.load}
	if w := now.Sub(since); w > 0 {
		d.Waited = w
	}
	d.Reason = a.reason(req, nodes, best, d.Waited)
	return d, nil, nil
}

// perNode is what the policy keeps about one node.
type perNode struct {
	resv []reservation
	// The node's executing steps as their profiles see them, for the
	// reading received at seen and the profiles' version ver.
	seen  time.Time
	ver   uint64
	valid bool
	terms []inflightTerm
}

// node returns the policy's state of a node, creating it.
func (a *Adaptive) node(name string) *perNode {
	pn := a.per[name]
	if pn == nil {
		pn = &perNode{}
		a.per[name] = pn
	}
	return pn
}

// scratch is reused by every decision (under mu) so that placing allocates
// little.
type scratch struct {
	coord   string  // the request's coordinator
	coords  float64 // coordinators placing concurrently
	demands []demandInfo
	fresh   []freshState
	elig    []int
	ok      []bool
	cum     []float64
	inelig  []inelig
	press   []float64
	cand    []candidate
	buf     []byte
}
