// Package sim is a deterministic, virtual-time simulator of a Drover cluster
// that drives the production placement code (placement.Adaptive, the
// baselines, placement.MemView, meter.Resources and meter.TokenBucket) with
// an injected clock and seeded randomness, to compare policies against each
// other and against an offline lower bound on the makespan.
//
// The model: eight nodes with 8/8/4/4/2/2/1/1 cores and 4 GiB of memory per
// core; processor sharing of each node's cores (a step keeps at most its own
// parallelism busy; a node whose memory is over-committed computes slower in
// proportion, as if swapping); a dispatch hop of 200µs off the coordinator;
// open arrivals at a mean load (the fraction of all cores their CPU needs)
// with bursts of three times the rate for 1.5s in every 10s; coordinators
// drawn uniformly among live nodes. Step kinds: tiny (2ms), heavy-tailed CPU
// (Pareto, mean 0.2s, up to 10s), four-core (2 core-seconds), memory-hungry
// (6 GiB used, 256 MiB declared), third-party API calls (150ms; 5 requests/s
// per source IP, the first four nodes sharing one IP), database queries
// (600ms holding one of 16 connections) and data-local steps (300ms more off
// their data's node). Every node publishes a meter reading each interval;
// a node stops publishing when killed and is dropped three intervals after
// its last reading, when its unfinished steps are placed again.
//
// A call that the API's rate limit or the database's pool refuses is a
// violation, retried with the engine's default backoff (4 attempts). The
// policies "drover" and "p2c+limits" enforce the declared resources on the
// worker (meter.Resources) as Drover's engine does; the others model
// schedulers that know nothing of them.
//
// FanIn models the other side of the readings: what it costs each node to
// hear every node's heartbeat as the cluster grows (N² deliveries a second),
// from sizes and CPU costs measured on this machine, against designs that
// hear less.
package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/placement"
	"github.com/droverhq/drover/starlark/builtins"
)

// Config is one simulated run.
type Config struct {
	Seed     uint64
	Policy   string        // one of Policies
	Load     float64       // mean fraction of the cluster's cores the arriving work needs
	Interval time.Duration // between a node's meter readings
	Window   time.Duration // steps arrive during this time (default 20s)
	Kill     bool          // kill the second node (8 cores) at 40% of the window
	Halve    bool          // halve the shared IP's API limit at 30% of the window
}

// Result is what one run measured.
type Result struct {
	Steps      int
	Completed  int
	Failed     int // steps that exhausted their attempts or waited too long for a node
	Waited     int // steps that waited for a node or for resource units
	Violations int // calls refused by the API's rate limit or the database's pool
	Makespan   time.Duration
	LowerBound time.Duration
	P50, P99   float64 // slowdown: time from arrival to completion over the step's ideal time
}

// Policies are the policies the simulator compares.
var Policies = []string{"random", "round-robin", "least-loaded", "p2c", "p2c+limits", "drover"}

var (
	nodeCores = []float64{8, 8, 4, 4, 2, 2, 1, 1}
	nodeMem   = []float64{32 * gib, 32 * gib, 16 * gib, 16 * gib, 8 * gib, 8 * gib, 4 * gib, 4 * gib}
)

const (
	apiRate   = 5.0 // requests per second per source IP
	dbPool    = 16
	sharedIPs = 4 // the first four nodes share one source IP
	baseMem   = 0.1
)

var epoch = time.Unix(1_700_000_000, 0).UTC()

type state int

const (
	placing state = iota
	hopping
	gating
	backoff
	running
	done
	failed
	lost
)

type step struct {
	id     int
	kind   *kind
	arrive time.Duration
	cpu    float64 // core-seconds
	ideal  float64 // seconds
	prefer int     // node holding its data, or -1

	demands  []meter.Demand
	state    state
	gen      int // bumped when the step is lost, to drop its pending events
	coord    int
	node     int
	since    time.Duration // waiting for a node since
	attempts int
	waited   bool
	gateRes  string
	holdsDB  bool // a real database connection
	holdsRes bool // declared units (gated policies)
	start    time.Duration
	left     float64 // CPU work left
	rate     float64 // cores it gets now
	end      time.Duration
}

type node struct {
	name     string
	cores    float64
	memTotal float64
	memUsed  float64
	alive    bool
	ip       int
	res      *meter.Resources
	jobs     []*step // computing
	present  []*step // gating, backing off or running here
	last     time.Duration
	ver      uint64
	busy     float64 // core-seconds since the last reading
	lastRead time.Duration
	placed   uint64 // steps placed as a coordinator
	inFlight map[string]int
	waiting  map[string]int
}

type evKind int

const (
	evArrive evKind = iota
	evPlace
	evReach
	evGate
	evRetry
	evIODone
	evCPUDone
	evPublish
	evKill
	evDetect
	evHalve
)

type event struct {
	at   time.Duration
	seq  uint64
	kind evKind
	st   *step
	gen  int
	node int
	ver  uint64
}

type sim struct {
	cfg    Config
	now    time.Duration
	seq    uint64
	events []event
	rng    *rand.Rand
	nodes  []*node
	view   *placement.MemView
	pols   []placement.Policy
	adapt  []*placement.Adaptive
	gated  bool
	ttl    time.Duration

	realAPI   []*meter.TokenBucket // what the API enforces, per source IP
	sharedAPI *meter.TokenBucket   // the declared bucket of the shared IP
	declDB    *meter.Pool          // the declared cluster pool
	dbInUse   int                  // connections the database holds
	dbWaiters []*step
	lostSteps []*step
	detected  []bool

	slow []float64
	res  Result
}

func (s *sim) clock() time.Time { return epoch.Add(s.now) }

func (s *sim) push(e event) {
	e.seq = s.seq
	s.seq++
	s.events = append(s.events, e)
	// sift up
	i := len(s.events) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s.events[i], s.events[p] = s.events[p], s.events[i]
		i = p
	}
}

func (s *sim) less(i, j int) bool {
	a, b := &s.events[i], &s.events[j]
	return a.at < b.at || a.at == b.at && a.seq < b.seq
}

func (s *sim) pop() event {
	e := s.events[0]
	n := len(s.events) - 1
	s.events[0] = s.events[n]
	s.events = s.events[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s.less(l, m) {
			m = l
		}
		if r < n && s.less(r, m) {
			m = r
		}
		if m == i {
			return e
		}
		s.events[i], s.events[m] = s.events[m], s.events[i]
		i = m
	}
}

func (s *sim) at(d time.Duration, e event) {
	e.at = s.now + d
	if e.st != nil {
		e.gen = e.st.gen
	}
	s.push(e)
}

// Run simulates one configuration.
func Run(cfg Config) (Result, error) {
	if cfg.Window <= 0 {
		cfg.Window = 20 * time.Second
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if !slices.Contains(Policies, cfg.Policy) {
		return Result{}, fmt.Errorf("sim: unknown policy %q; the policies are %v", cfg.Policy, Policies)
	}
	s := &sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 1)), gated: cfg.Policy == "drover" || cfg.Policy == "p2c+limits"}
	s.ttl = 3 * cfg.Interval
	s.view = placement.NewMemView(s.ttl, s.clock)
	s.sharedAPI = meter.NewTokenBucket(apiRate, apiRate, epoch)
	s.declDB = meter.NewPool(dbPool)
	for range 1 + len(nodeCores) - sharedIPs {
		s.realAPI = append(s.realAPI, meter.NewTokenBucket(apiRate, apiRate, epoch))
	}
	totalCores := 0.0
	for i, c := range nodeCores {
		n := &node{name: fmt.Sprintf("n%d", i+1), cores: c, memTotal: nodeMem[i], alive: true,
			inFlight: map[string]int{}, waiting: map[string]int{}}
		n.memUsed = baseMem * n.memTotal
		api := fmt.Sprintf("api=%g/s,host=api.partner.example", apiRate)
		if i < sharedIPs {
			api += ",scope=group:nat-a"
		} else {
			n.ip = 1 + i - sharedIPs
		}
		specs, err := meter.ParseResources([]string{api, fmt.Sprintf("db=%d,scope=cluster,builtin=sql.*", dbPool)})
		if err != nil {
			return Result{}, err
		}
		n.res, err = meter.NewResources(specs, meter.ResourcesOptions{Now: s.clock, Shared: func(spec meter.ResourceSpec) meter.Limiter {
			if spec.Name == "db" {
				return s.declDB
			}
			return s.sharedAPI
		}})
		if err != nil {
			return Result{}, err
		}
		s.nodes = append(s.nodes, n)
		totalCores += c
	}
	s.detected = make([]bool, len(s.nodes))
	for i := range s.nodes {
		prng := rand.New(rand.NewPCG(cfg.Seed, 100+uint64(i)))
		var p placement.Policy
		var ad *placement.Adaptive
		switch cfg.Policy {
		case "random":
			p = placement.NewRandom(s.view, prng)
		case "round-robin":
			p = placement.NewRoundRobin(s.view)
		case "least-loaded":
			p = placement.NewLeastLoaded(s.view)
		case "p2c", "p2c+limits":
			p = placement.NewPowerOfTwo(s.view, prng)
		case "drover":
			ad = placement.NewAdaptive(s.view, placement.Options{Now: s.clock, Rand: prng})
			p = ad
		}
		s.pols, s.adapt = append(s.pols, p), append(s.adapt, ad)
	}

	steps := arrivals(s.rng, cfg.Load, cfg.Window, totalCores, len(s.nodes))
	for _, st := range steps {
		st.demands = s.nodes[0].res.Demands(st.kind.builtin, st.kind.args, st.kind.declare)
		s.at(st.arrive, event{kind: evArrive, st: st})
	}
	for i := range s.nodes {
		s.publish(i)
		s.at(time.Duration(s.rng.Int64N(int64(cfg.Interval)))+1, event{kind: evPublish, node: i})
	}
	var kill time.Duration
	var killed float64
	if cfg.Kill {
		kill, killed = cfg.Window*4/10, s.nodes[1].cores
		s.at(kill, event{kind: evKill, node: 1})
	}
	if cfg.Halve {
		s.at(cfg.Window*3/10, event{kind: evHalve})
	}

	pending := len(steps)
	for pending > 0 && len(s.events) > 0 {
		e := s.pop()
		s.now = e.at
		if e.st != nil && e.gen != e.st.gen {
			continue // the step was lost since
		}
		before := s.res.Completed + s.res.Failed
		s.handle(e)
		pending -= s.res.Completed + s.res.Failed - before
	}
	s.res.Steps = len(steps)
	s.res.LowerBound = lowerBound(steps, totalCores, kill, killed,
		apiRate*float64(len(s.realAPI)), apiRate*float64(len(s.realAPI)), dbPool)
	for _, st := range steps {
		if st.state == done || st.state == failed {
			s.res.Makespan = max(s.res.Makespan, st.end)
		}
		if st.waited {
			s.res.Waited++
		}
	}
	slices.Sort(s.slow)
	if len(s.slow) > 0 {
		s.res.P50 = s.slow[len(s.slow)/2]
		s.res.P99 = s.slow[min(len(s.slow)-1, len(s.slow)*99/100)]
	}
	return s.res, nil
}

func (s *sim) handle(e event) {
	switch e.kind {
	case evArrive:
		var live []int
		for i, n := range s.nodes {
			if n.alive {
				live = append(live, i)
			}
		}
		e.st.coord = live[s.rng.IntN(len(live))]
		e.st.since = s.now
		s.place(e.st)
	case evPlace:
		s.place(e.st)
	case evReach:
		s.reach(e.st)
	case evGate:
		n := s.nodes[e.st.node]
		n.waiting[e.st.gateRes]--
		s.gate(e.st)
	case evRetry:
		if !s.nodes[e.st.node].alive {
			s.lose(e.st)
			return
		}
		s.gate(e.st)
	case evIODone:
		s.compute(e.st)
	case evCPUDone:
		n := s.nodes[e.node]
		if e.ver != n.ver || !n.alive {
			return
		}
		s.advance(n)
		var finished []*step
		n.jobs = slices.DeleteFunc(n.jobs, func(st *step) bool {
			if st.left <= 1e-9 {
				finished = append(finished, st)
				return true
			}
			return false
		})
		for _, st := range finished {
			s.finish(st)
		}
		s.reschedule(n)
	case evPublish:
		if s.nodes[e.node].alive {
			s.publish(e.node)
			s.at(s.cfg.Interval, event{kind: evPublish, node: e.node})
		}
	case evKill:
		s.kill(e.node)
	case evDetect:
		s.detected[e.node] = true
		lostNow := s.lostSteps
		s.lostSteps = nil
		slices.SortFunc(lostNow, func(a, b *step) int { return a.id - b.id })
		for _, st := range lostNow {
			st.since = s.now
			s.place(st)
		}
	case evHalve:
		s.sharedAPI.SetLimit(apiRate/2, apiRate/2, s.clock())
		s.realAPI[0].SetLimit(apiRate/2, apiRate/2, s.clock())
	}
}

// coordinator returns the live node coordinating the step (an adopter when
// its coordinator died).
func (s *sim) coordinator(st *step) int {
	for !s.nodes[st.coord].alive {
		st.coord = (st.coord + 1) % len(s.nodes)
	}
	return st.coord
}

func (s *sim) place(st *step) {
	st.state = placing
	c := s.coordinator(st)
	req := placement.Request{Run: "sim", Step: fmt.Sprint(st.id), Builtin: st.kind.builtin,
		Coordinator: s.nodes[c].name, Demands: st.demands}
	if st.prefer >= 0 && s.nodes[st.prefer].alive {
		req.Prefer = s.nodes[st.prefer].name
	}
	var d placement.Decision
	var err error
	if ad := s.adapt[c]; ad != nil {
		var q *placement.Queued
		d, q, err = ad.TryPlace(req, epoch.Add(st.since))
		if q != nil {
			st.waited = true
			s.at(q.Retry, event{kind: evPlace, st: st})
			return
		}
	} else {
		d, err = s.pols[c].Place(context.Background(), req)
	}
	if err != nil {
		s.fail(st)
		return
	}
	s.nodes[c].placed++
	st.node = s.index(d.Node)
	st.state = hopping
	if st.node == c {
		s.reach(st)
		return
	}
	s.at(hop, event{kind: evReach, st: st})
}

func (s *sim) index(name string) int {
	for i, n := range s.nodes {
		if n.name == name {
			return i
		}
	}
	panic("sim: placed on an unknown node " + name)
}

func (s *sim) reach(st *step) {
	n := s.nodes[st.node]
	if !n.alive {
		s.lose(st)
		return
	}
	n.present = append(n.present, st)
	st.attempts = 0
	s.gate(st)
}

// gate takes the step's declared units (gated policies), or waits for them.
func (s *sim) gate(st *step) {
	n := s.nodes[st.node]
	if s.gated && len(st.demands) > 0 {
		ok, wait, short := n.res.Take(st.demands)
		if !ok {
			st.state, st.waited, st.gateRes = gating, true, short
			n.waiting[short]++
			if wait > 0 {
				s.at(wait, event{kind: evGate, st: st})
			} else {
				s.dbWaiters = append(s.dbWaiters, st)
			}
			return
		}
		st.holdsRes = true
	}
	s.start(st)
}

// start is one attempt: the call reaches the API or the database, then the
// step computes.
func (s *sim) start(st *step) {
	n := s.nodes[st.node]
	st.attempts++
	switch st.kind.builtin {
	case "http.get":
		if ok, _ := s.realAPI[n.ip].Take(1, s.clock()); !ok {
			s.res.Violations++
			s.attemptFailed(st)
			return
		}
	case "sql.query":
		if s.dbInUse >= dbPool {
			s.res.Violations++
			s.attemptFailed(st)
			return
		}
		s.dbInUse++
		st.holdsDB = true
	}
	st.state, st.start = running, s.now
	s.advance(n)
	n.memUsed += st.kind.mem
	n.inFlight[st.kind.builtin]++
	io := st.kind.io
	if st.kind.local && st.prefer != st.node {
		io += transfer.Seconds()
	}
	if io > 0 {
		s.reschedule(n) // memory changed
		s.at(time.Duration(io*float64(time.Second)), event{kind: evIODone, st: st})
		return
	}
	s.compute(st)
}

func (s *sim) compute(st *step) {
	n := s.nodes[st.node]
	s.advance(n)
	st.left = st.cpu
	n.jobs = append(n.jobs, st)
	s.reschedule(n)
}

func (s *sim) attemptFailed(st *step) {
	s.releaseDeclared(st)
	if st.attempts >= builtins.DefaultRetry.MaxAttempts {
		s.leave(st)
		s.fail(st)
		return
	}
	st.state = backoff
	s.at(builtins.DefaultRetry.Delay(st.attempts+1), event{kind: evRetry, st: st})
}

func (s *sim) releaseDeclared(st *step) {
	if !st.holdsRes {
		return
	}
	st.holdsRes = false
	s.nodes[st.node].res.Release(st.demands)
	if w := s.dbWaiters; len(w) > 0 {
		s.dbWaiters = nil
		for _, o := range w {
			if o.state == gating {
				s.at(0, event{kind: evGate, st: o})
			}
		}
	}
}

func (s *sim) leave(st *step) {
	n := s.nodes[st.node]
	n.present = slices.DeleteFunc(n.present, func(o *step) bool { return o == st })
}

func (s *sim) finish(st *step) {
	n := s.nodes[st.node]
	n.memUsed -= st.kind.mem
	n.inFlight[st.kind.builtin]--
	if st.holdsDB {
		st.holdsDB = false
		s.dbInUse--
	}
	s.releaseDeclared(st)
	s.leave(st)
	st.state, st.end = done, s.now
	s.res.Completed++
	s.slow = append(s.slow, (st.end-st.arrive).Seconds()/st.ideal)
	if ad := s.adapt[s.coordinator(st)]; ad != nil {
		ad.Observe(st.kind.builtin, s.now-st.start, time.Duration(st.cpu*float64(time.Second)), int64(st.kind.mem))
	}
}

func (s *sim) fail(st *step) {
	st.state, st.end = failed, s.now
	s.res.Failed++
}

// lose records a step lost with its node; it is placed again once the node's
// loss is detected.
func (s *sim) lose(st *step) {
	st.gen++
	st.state = lost
	if s.detected[st.node] {
		st.since = s.now
		s.place(st)
		return
	}
	s.lostSteps = append(s.lostSteps, st)
}

func (s *sim) kill(i int) {
	n := s.nodes[i]
	s.advance(n)
	n.alive = false
	n.ver++
	for _, st := range n.present {
		if st.holdsDB {
			st.holdsDB = false
			s.dbInUse--
		}
		s.releaseDeclared(st)
		st.gen++
		st.state = lost
		s.lostSteps = append(s.lostSteps, st)
	}
	n.present, n.jobs = nil, nil
	s.dbWaiters = slices.DeleteFunc(s.dbWaiters, func(st *step) bool { return st.state != gating })
	// Coordinators drop the node when its last reading expires.
	s.at(n.lastRead+s.ttl-s.now, event{kind: evDetect, node: i})
}

// advance brings the node's computing steps up to now.
func (s *sim) advance(n *node) {
	dt := (s.now - n.last).Seconds()
	n.last = s.now
	if dt <= 0 {
		return
	}
	for _, st := range n.jobs {
		st.left -= st.rate * dt
		n.busy += st.rate * dt
	}
}

// reschedule shares the node's cores among its computing steps and schedules
// the next completion.
func (s *sim) reschedule(n *node) {
	n.ver++
	if len(n.jobs) == 0 {
		return
	}
	want := 0.0
	for _, st := range n.jobs {
		want += st.kind.par
	}
	f := math.Min(1, n.cores/want)
	if n.memUsed > n.memTotal {
		f *= n.memTotal / n.memUsed // swapping
	}
	next := math.Inf(1)
	for _, st := range n.jobs {
		st.rate = st.kind.par * f
		next = math.Min(next, math.Max(st.left, 0)/st.rate)
	}
	s.at(time.Duration(math.Ceil(next*1e9)), event{kind: evCPUDone, node: slices.Index(s.nodes, n), ver: n.ver})
}

// publish is a node's meter reading, as the engine would publish it.
func (s *sim) publish(i int) {
	n := s.nodes[i]
	s.advance(n)
	r := meter.Reading{Node: n.name, Time: s.clock(), Cores: int(n.cores), MemUsed: uint64(n.memUsed), MemTotal: uint64(n.memTotal),
		InFlight: map[string]int{}, Resources: n.res.States(), Placed: n.placed}
	if dt := (s.now - n.lastRead).Seconds(); dt > 0 {
		r.CPU = math.Min(1, n.busy/(n.cores*dt))
	}
	for _, st := range n.jobs {
		r.Runnable += st.kind.par
	}
	for b, k := range n.inFlight {
		if k > 0 {
			r.InFlight[b] = k
			r.InFlightSum += k
		}
	}
	for name, st := range r.Resources {
		st.Waiting = n.waiting[name]
		r.Waiting += st.Waiting
		r.Resources[name] = st
	}
	n.busy, n.lastRead = 0, s.now
	s.view.Put(r)
}
