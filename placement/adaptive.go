package placement

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/meter"
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

// inflightTerm is k executing steps of one builtin.
type inflightTerm struct {
	k           int64
	cores, wall float64
	mem         float64
	profiled    bool
}

// reservation is a step this coordinator placed on a node that the node's
// readings do not show yet.
type reservation struct {
	// Unix nanoseconds on the coordinator's clock: placed at; pool units
	// held until the predicted end; cores and memory counted until busyEnd
	// (twice the predicted time: a step often runs longer than predicted on
	// a busy node); kept at most until end.
	at, until, busyEnd, end int64
	cores                   float64 // cores the step is predicted to use
	mem                     float64 // bytes
	units                   []unit  // node-scoped resource units
}

type unit struct {
	res    string
	amount float64
	rate   bool
}

type sharedKey struct {
	res   string
	scope meter.Scope
}

type sharedResv struct {
	at, until int64
	amount    float64
	rate      bool
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

type demandInfo struct {
	meter.Demand
	known bool // some live node declares the resource
}

type freshState struct {
	key  sharedKey
	st   meter.ResourceState
	seen time.Time
}

type inelig struct {
	node     int
	why      string // "lacks", "exhausted", "too small", "memory"
	resource string
	wait     time.Duration // until it may take the step; <0 never; 0 unknown
}

type candidate struct {
	node        int
	score, load float64
	mem         float64 // predicted memory use with the step, when high enough to count
}

// prediction is what a profile says about one step, in seconds and bytes:
// cpuWall is its computing time on its own cores, io the rest of its time.
type prediction struct {
	wall, cpuWall, io float64
	cores             float64
	mem               float64
}

// Queued says that no node can take a step yet.
type Queued struct {
	// Resource is what the step waits for: a custom resource or "memory".
	Resource string
	// Retry is when to look again (a new reading may allow it sooner).
	Retry time.Duration
	// Detail says what placement saw, for the queue's display.
	Detail string
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

// Waiting returns the number of steps waiting in Place for a node, by the
// resource they wait for: the visible queue.
func (a *Adaptive) Waiting() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.queue))
	for k, v := range a.queue {
		out[k] = v
	}
	return out
}

// Place implements Policy: it waits, bounded by MaxWait and ctx, until a node
// can take the step.
func (a *Adaptive) Place(ctx context.Context, req Request) (Decision, error) {
	since := a.opts.Now()
	queuedOn := ""
	defer func() {
		if queuedOn != "" {
			a.requeue(queuedOn, "")
		}
	}()
	for {
		var changed <-chan struct{}
		if a.changed != nil {
			changed = a.changed()
		}
		d, q, err := a.TryPlace(req, since)
		if q == nil {
			if err == nil && queuedOn != "" {
				d.Reason += " for " + queuedOn
			}
			return d, err
		}
		if q.Resource != queuedOn {
			a.requeue(queuedOn, q.Resource)
			queuedOn = q.Resource
		}
		t := time.NewTimer(q.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return Decision{}, &NoNodeError{Builtin: req.Builtin, Resource: q.Resource, Detail: q.Detail,
				Waited: a.opts.Now().Sub(since), Err: context.Cause(ctx)}
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

func (a *Adaptive) requeue(from, to string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if from != "" {
		if a.queue[from]--; a.queue[from] <= 0 {
			delete(a.queue, from)
		}
	}
	if to != "" {
		a.queue[to]++
	}
}

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

	// Memory constrains only if the step fits some node at all: a profile
	// that fits nowhere is more likely wrong than every node too small.
	memHard := false
	if pred.mem > 0 {
		for i := range nodes {
			if u := a.usable(&nodes[i]); u > 0 && u >= pred.mem {
				memHard = true
				break
			}
		}
	}

	s.elig, s.cum, s.inelig = s.elig[:0], s.cum[:0], s.inelig[:0]
	s.ok = slices.Grow(s.ok[:0], len(nodes))[:len(nodes)]
	s.press = slices.Grow(s.press[:0], len(nodes))[:len(nodes)]
	total := 0.0
	for i := range nodes {
		in, press, ok := a.check(&nodes[i], i, now, pred, memHard)
		s.ok[i], s.press[i] = ok, press
		if !ok {
			s.inelig = append(s.inelig, in)
			continue
		}
		total += float64(max(nodes[i].Cores, 1))
		s.elig = append(s.elig, i)
		s.cum = append(s.cum, total)
	}
	if len(s.elig) == 0 {
		return a.queued(req, nodes, now, since)
	}

	// Candidates: sampled by cores, plus the coordinator and the data's node.
	s.cand = s.cand[:0]
	add := func(i int, onlyIfFree bool) {
		if i < 0 || !s.ok[i] || slices.ContainsFunc(s.cand, func(c candidate) bool { return c.node == i }) {
			return
		}
		sc, load, mem := a.score(&nodes[i], i, now, pred, req)
		if onlyIfFree && load > 1 {
			return
		}
		s.cand = append(s.cand, candidate{node: i, score: sc, load: load, mem: mem})
	}
	a.sample(total, min(a.opts.Choices, len(s.elig)), add)
	// The coordinator joins the sampled nodes only while it has a free core
	// for the step: it is asked about far more often than its share of the
	// cluster's cores, so a busy small coordinator would otherwise draw work
	// on stale readings. The node holding the step's data always joins.
	add(indexOf(nodes, req.Coordinator), true)
	add(indexOf(nodes, req.Prefer), false)
	if len(s.cand) == 0 { // cannot happen: sample adds at least one
		add(s.elig[0], false)
	}
	best := 0
	for i, c := range s.cand {
		if c.score < s.cand[best].score {
			best = i
		}
	}
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

// collectDemands notes which demanded resources some live node declares, and
// the freshest reading of every shared one.
func (a *Adaptive) collectDemands(demands []meter.Demand, nodes []NodeState) {
	s := &a.s
	s.demands, s.fresh = s.demands[:0], s.fresh[:0]
	for _, d := range demands {
		if d.Amount > 0 && d.Resource != "" && d.Resource != meter.CPU && d.Resource != meter.Memory {
			s.demands = append(s.demands, demandInfo{Demand: d})
		}
	}
	if len(s.demands) == 0 {
		return
	}
	for i := range nodes {
		n := &nodes[i]
		for j := range s.demands {
			st, ok := n.Resources[s.demands[j].Resource]
			if !ok {
				continue
			}
			s.demands[j].known = true
			if !st.Scope.Shared() {
				continue
			}
			key := sharedKey{s.demands[j].Resource, st.Scope}
			k := slices.IndexFunc(s.fresh, func(f freshState) bool { return f.key == key })
			switch {
			case k < 0:
				s.fresh = append(s.fresh, freshState{key: key, st: st, seen: n.Seen})
			case n.Seen.After(s.fresh[k].seen):
				s.fresh[k].st, s.fresh[k].seen = st, n.Seen
			}
		}
	}
}

// check says whether node n can take the step now, and if not why and when it
// might; press is the pressure of its nearly empty buckets on the score.
func (a *Adaptive) check(n *NodeState, i int, now time.Time, pred prediction, memHard bool) (in inelig, press float64, ok bool) {
	s := &a.s
	nowNs := now.UnixNano()
	resv := a.pruneNode(n.Node, n.Seen.UnixNano(), nowNs)
	for _, d := range s.demands {
		if !d.known {
			continue // declared by no live node: not limited
		}
		st, has := n.Resources[d.Resource]
		if !has {
			return inelig{node: i, why: "lacks", resource: d.Resource, wait: -1}, 0, false
		}
		seen := n.Seen
		var reserved float64
		if st.Scope.Shared() {
			key := sharedKey{d.Resource, st.Scope}
			if k := slices.IndexFunc(s.fresh, func(f freshState) bool { return f.key == key }); k >= 0 {
				st, seen = s.fresh[k].st, s.fresh[k].seen
			}
			for _, r := range a.pruneShared(key, seen.UnixNano(), nowNs) {
				reserved += r.amount
			}
		} else {
			for _, r := range resv {
				for _, u := range r.units {
					if u.res == d.Resource && (u.rate || r.until > nowNs) {
						reserved += u.amount
					}
				}
			}
		}
		if d.Amount > st.Capacity+1e-9 {
			return inelig{node: i, why: "too small", resource: d.Resource, wait: -1}, 0, false
		}
		free := project(st, seen, now) - reserved
		if free+1e-9 < d.Amount {
			wait := time.Duration(0)
			if st.Rate > 0 {
				wait = time.Duration((d.Amount - free) / st.Rate * float64(time.Second))
			}
			return inelig{node: i, why: "exhausted", resource: d.Resource, wait: wait}, 0, false
		}
		if st.Kind == meter.KindRate && st.Capacity > 0 {
			press += 1 - (free-d.Amount)/st.Capacity
		}
	}
	if memHard && n.MemTotal > 0 {
		var reserved float64
		for _, r := range resv {
			if r.busyEnd > nowNs {
				reserved += r.mem
			}
		}
		used := float64(n.MemUsed) + reserved*a.spread(n)
		u := a.usable(n)
		if used+pred.mem > u {
			// Only near the limit: count what finished since the reading.
			_, _, freed := a.inflight(n, now.Sub(n.Seen).Seconds())
			used -= freed
		}
		if used+pred.mem > u {
			wait := time.Duration(0)
			if pred.mem > u {
				wait = -1
			}
			return inelig{node: i, why: "memory", resource: "memory", wait: wait}, 0, false
		}
	}
	return inelig{}, press, true
}

// coordinators estimates how many coordinators' worth of placements there
// are for each of coord's: the cluster's placement rate over coord's own, at
// least 1 and at most the number of live nodes (the count when no rate is
// known yet).
func coordinators(nodes []NodeState, coord string) float64 {
	var total, own float64
	for i := range nodes {
		total += nodes[i].Placing
		if nodes[i].Node == coord {
			own = nodes[i].Placing
		}
	}
	n := float64(len(nodes))
	if total <= 0 {
		return n
	}
	return min(max(total/max(own, total/n), 1), n)
}

// spread is how much of node n's load placed since its reading this
// coordinator's reservations stand for: its own only on its own node (the
// others place little there), and those of every coordinator elsewhere,
// assuming they placed there as it did.
func (a *Adaptive) spread(n *NodeState) float64 {
	if n.Node == a.s.coord {
		return 1
	}
	return a.s.coords
}

// project returns a resource's free units now: the measured free units,
// refilled at the bucket's rate since the reading, less the steps already
// waiting for them.
func project(st meter.ResourceState, seen, now time.Time) float64 {
	free := st.Free
	if st.Rate > 0 {
		if age := now.Sub(seen).Seconds(); age > 0 {
			free = math.Min(st.Capacity, free+st.Rate*age)
		}
	}
	return free - float64(st.Waiting)
}

func (a *Adaptive) usable(n *NodeState) float64 {
	return float64(n.MemTotal) * (1 - a.opts.MemoryReserve)
}

// sample calls add with k distinct eligible nodes drawn with probability
// proportional to their cores.
func (a *Adaptive) sample(total float64, k int, add func(int, bool)) {
	s := &a.s
	if k >= len(s.elig) {
		for _, i := range s.elig {
			add(i, false)
		}
		return
	}
	var taken [8]int
	nt := 0
	remaining := total
	for nt < k && nt < len(taken) {
		r := a.rng.Float64() * remaining
		// Skip the intervals of nodes already taken.
		slices.Sort(taken[:nt])
		for _, t := range taken[:nt] {
			lo := 0.0
			if t > 0 {
				lo = s.cum[t-1]
			}
			if r >= lo {
				r += s.cum[t] - lo
			}
		}
		j := sort.SearchFloat64s(s.cum, r)
		for j < len(s.cum) && s.cum[j] <= r {
			j++
		}
		if j >= len(s.cum) {
			j = len(s.cum) - 1
		}
		if slices.Contains(taken[:nt], j) {
			break // floating-point edge: settle for fewer
		}
		lo := 0.0
		if j > 0 {
			lo = s.cum[j-1]
		}
		remaining -= s.cum[j] - lo
		taken[nt] = j
		nt++
		add(s.elig[j], false)
	}
}

// score predicts the step's completion time on node n, in seconds, the
// node's load with the step, and its memory use when high enough to weigh.
func (a *Adaptive) score(n *NodeState, i int, now time.Time, pred prediction, req Request) (score, load, memUse float64) {
	cores := float64(max(n.Cores, 1))
	inf, still, _ := a.inflight(n, now.Sub(n.Seen).Seconds())
	busy := max(n.CPU*cores, n.Runnable, inf) * still
	var mem, rc float64
	nowNs := now.UnixNano()
	for _, r := range a.node(n.Node).resv { // pruned by check
		if r.busyEnd > nowNs {
			rc += r.cores
			mem += r.mem
		}
	}
	f := a.spread(n)
	busy += rc * f
	mem *= f
	load = (busy + pred.cores) / cores
	score = pred.io + pred.cpuWall*math.Max(1, load) + 0.25*pred.cpuWall*math.Min(load, 1)
	if n.MemTotal > 0 && pred.mem > 0 {
		if f := (float64(n.MemUsed) + mem + pred.mem) / float64(n.MemTotal); f > memoryHigh {
			score += (f - memoryHigh) * 5 * pred.wall
			memUse = f
		}
	}
	score += 0.5 * pred.wall * a.s.press[i]
	if n.Node != req.Coordinator {
		score += a.opts.DispatchCost.Seconds()
	}
	if req.Prefer != "" && n.Node != req.Prefer {
		score += a.opts.Locality.Seconds()
	}
	return score, load, memUse
}

// memoryHigh is the share of a node's memory above which its use weighs on
// the score.
const memoryHigh = 0.8

// node returns the policy's state of a node, creating it.
func (a *Adaptive) node(name string) *perNode {
	pn := a.per[name]
	if pn == nil {
		pn = &perNode{}
		a.per[name] = pn
	}
	return pn
}

// inflight estimates, from their builtins' profiles, the cores a node's
// executing steps used when it was read, the share of those cores still
// busy now, and the memory they have freed since. A step running at the
// reading, age seconds ago, is taken to go on with probability W/(W+age)
// for its builtin's wall time W: a heavier tail than an exponential's,
// since the steps caught running are the longer ones. Sums are taken in
// fixed point so that map order cannot change the result.
func (a *Adaptive) inflight(n *NodeState, age float64) (cores, still, memFreed float64) {
	pn := a.node(n.Node)
	if ver := a.profiles.ver.Load(); !pn.valid || !pn.seen.Equal(n.Seen) || pn.ver != ver {
		pn.terms = pn.terms[:0]
		for b, k := range n.InFlight {
			t := inflightTerm{k: int64(k), cores: 1}
			if p, ok := a.profiles.Get(b); ok {
				t.cores, t.wall, t.mem, t.profiled = p.Cores(), p.Wall.Seconds(), float64(p.Mem), true
			}
			pn.terms = append(pn.terms, t)
		}
		pn.seen, pn.ver, pn.valid = n.Seen, ver, true
	}
	var c0, c1, m int64
	for _, t := range pn.terms {
		f := 1.0
		if t.profiled && age > 0 {
			f = t.wall / (t.wall + age)
		}
		c0 += int64(math.Round(t.cores*1e6)) * t.k
		c1 += int64(math.Round(t.cores*f*1e6)) * t.k
		m += int64(math.Round(t.mem*(1-f))) * t.k
	}
	cores, still = float64(c0)/1e6, 1
	if c0 > 0 {
		still = float64(c1) / float64(c0)
	}
	return cores, still, float64(m)
}

// predict says what one step of req will cost: its builtin's profile, or the
// declared hints (meter.CPU, meter.Memory) until the builtin is measured.
// Declared cores stay a floor: measurements on busy nodes show fewer.
func (a *Adaptive) predict(req Request) prediction {
	var declCPU, declMem float64
	for _, d := range req.Demands {
		switch d.Resource {
		case meter.CPU:
			declCPU = d.Amount
		case meter.Memory:
			declMem = d.Amount
		}
	}
	p, measured := a.profiles.Get(req.Builtin)
	k := 1.0
	if measured {
		k = p.Cores()
	} else {
		p = a.opts.Default
		if declCPU > 0 {
			k = declCPU
			p.CPU = time.Duration(float64(p.Wall) * k)
		}
		p.Mem = int64(declMem)
	}
	k = math.Max(k, declCPU)
	w, c := p.Wall.Seconds(), math.Max(p.CPU.Seconds(), 0)
	pr := prediction{wall: w, cores: k, mem: float64(max(p.Mem, 0))}
	if k > 0 {
		pr.cpuWall = c / k
	}
	pr.io = math.Max(0, w-c)
	return pr
}

// reserve records the step on node n until a newer reading shows it.
func (a *Adaptive) reserve(n *NodeState, now time.Time, pred prediction, load float64) {
	dur := pred.io + pred.cpuWall*math.Max(1, load) + a.opts.DispatchCost.Seconds()
	at := now.UnixNano()
	until := at + int64(math.Min(dur, 600)*1e9)
	r := reservation{at: at, until: until, busyEnd: until + (until - at), cores: pred.cores, mem: pred.mem}
	r.end = r.busyEnd
	for _, d := range a.s.demands {
		st, ok := n.Resources[d.Resource]
		if !ok {
			continue
		}
		rate := st.Kind == meter.KindRate
		if st.Scope.Shared() {
			key := sharedKey{d.Resource, st.Scope}
			a.shared[key] = append(a.shared[key], sharedResv{at: at, until: until, amount: d.Amount, rate: rate})
			continue
		}
		r.units = append(r.units, unit{res: d.Resource, amount: d.Amount, rate: rate})
		if rate {
			r.end = math.MaxInt64 // spent tokens: until a reading shows them
		}
	}
	pn := a.node(n.Node)
	pn.resv = append(pn.resv, r)
}

// pruneNode drops the node's reservations that a reading (seen) shows or that
// ended, and returns the rest.
func (a *Adaptive) pruneNode(node string, seen, now int64) []reservation {
	pn := a.per[node]
	if pn == nil || len(pn.resv) == 0 {
		return nil
	}
	rs := pn.resv
	keep := rs[:0]
	for _, r := range rs {
		if r.at >= seen && r.end > now {
			keep = append(keep, r)
		}
	}
	if len(keep) != len(rs) {
		clear(rs[len(keep):])
		pn.resv = keep
	}
	return keep
}

func (a *Adaptive) pruneShared(key sharedKey, seen, now int64) []sharedResv {
	rs := a.shared[key]
	if len(rs) == 0 {
		return nil
	}
	keep := rs[:0]
	for _, r := range rs {
		if r.at >= seen && (r.rate || r.until > now) {
			keep = append(keep, r)
		}
	}
	if len(keep) != len(rs) {
		a.shared[key] = keep
	}
	return keep
}

// sweep forgets reservations on nodes that left the view.
func (a *Adaptive) sweep(nodes []NodeState) {
	for name := range a.per {
		if indexOf(nodes, name) < 0 {
			delete(a.per, name)
		}
	}
	for k, v := range a.shared {
		if len(v) == 0 {
			delete(a.shared, k)
		}
	}
}

func indexOf(nodes []NodeState, name string) int {
	if name == "" {
		return -1
	}
	i, ok := slices.BinarySearchFunc(nodes, name, func(n NodeState, name string) int { return strings.Compare(n.Node, name) })
	if !ok {
		return -1
	}
	return i
}

// queued builds the answer when no node can take the step.
func (a *Adaptive) queued(req Request, nodes []NodeState, now, since time.Time) (Decision, *Queued, error) {
	s := &a.s
	// The resource to wait for is the one that frees soonest.
	var best *inelig
	for k := range s.inelig {
		in := &s.inelig[k]
		if in.wait < 0 {
			continue
		}
		if best == nil || a.retryOf(in.wait) < a.retryOf(best.wait) {
			best = in
		}
	}
	waited := max(now.Sub(since), 0)
	if best == nil {
		in := s.inelig[0]
		return Decision{}, nil, &NoNodeError{Builtin: req.Builtin, Resource: in.resource, Waited: waited, Detail: a.detail(in.resource, nodes)}
	}
	if waited >= a.opts.MaxWait {
		return Decision{}, nil, &NoNodeError{Builtin: req.Builtin, Resource: best.resource, Waited: waited,
			Detail: a.detail(best.resource, nodes) + ", for the max wait of " + a.opts.MaxWait.String()}
	}
	retry := min(a.retryOf(best.wait), a.opts.MaxWait-waited)
	return Decision{}, &Queued{Resource: best.resource, Retry: max(retry, time.Microsecond), Detail: a.detail(best.resource, nodes)}, nil
}

func (a *Adaptive) retryOf(wait time.Duration) time.Duration {
	if wait <= 0 {
		return a.opts.Retry
	}
	return wait
}

// detail describes why no node can take the step, for errors and the queue.
func (a *Adaptive) detail(resource string, nodes []NodeState) string {
	counts := map[string]int{}
	for _, in := range a.s.inelig {
		if in.resource == resource {
			counts[in.why]++
		}
	}
	has := counts["exhausted"] + counts["too small"]
	switch {
	case resource == "memory":
		return "short on all " + strconv.Itoa(len(nodes)) + " live nodes"
	case counts["too small"] == has && has > 0:
		return "holds fewer units than demanded on every node that has it"
	case has == 0:
		return "declared by no live node"
	}
	return "exhausted on all " + strconv.Itoa(has) + " nodes that have it"
}

func appendMem(b []byte, use float64) []byte {
	if use <= 0 {
		return b
	}
	b = append(b, ", memory "...)
	b = strconv.AppendInt(b, int64(math.Round(use*100)), 10)
	return append(b, '%')
}

// reason writes the decision's one-line explanation.
func (a *Adaptive) reason(req Request, nodes []NodeState, best int, waited time.Duration) string {
	s := &a.s
	b := append(s.buf[:0], "drover: "...)
	c := s.cand[best]
	b = append(b, nodes[c.node].Node...)
	b = append(b, " (load "...)
	b = strconv.AppendFloat(b, c.load, 'f', 2, 64)
	b = appendMem(b, c.mem)
	if nodes[c.node].Node == req.Coordinator {
		b = append(b, ", co-located"...)
	}
	if req.Prefer != "" && nodes[c.node].Node == req.Prefer {
		b = append(b, ", data-local"...)
	}
	b = append(b, ')')
	others := 0
	for i, o := range s.cand {
		if i == best {
			continue
		}
		if others == 0 {
			b = append(b, " over "...)
		} else {
			b = append(b, ", "...)
		}
		others++
		b = append(b, nodes[o.node].Node...)
		b = append(b, " ("...)
		b = strconv.AppendFloat(b, o.load, 'f', 2, 64)
		b = appendMem(b, o.mem)
		b = append(b, ')')
	}
	if others == 0 {
		b = append(b, ", the only eligible of "...)
		b = strconv.AppendInt(b, int64(len(nodes)), 10)
	}
	for k, in := range s.inelig {
		if k == 3 {
			b = append(b, " (+"...)
			b = strconv.AppendInt(b, int64(len(s.inelig)-3), 10)
			b = append(b, " more)"...)
			break
		}
		if k == 0 {
			b = append(b, "; "...)
		} else {
			b = append(b, ", "...)
		}
		b = append(b, nodes[in.node].Node...)
		switch in.why {
		case "lacks":
			b = append(b, " lacks "...)
			b = append(b, in.resource...)
		case "memory":
			b = append(b, " short of memory"...)
		default:
			b = append(b, ' ')
			b = append(b, in.resource...)
			b = append(b, ' ')
			b = append(b, in.why...)
		}
	}
	if waited = waited.Round(time.Millisecond); waited > 0 {
		b = append(b, "; waited "...)
		b = append(b, waited.String()...)
	}
	s.buf = b
	return string(b)
}
