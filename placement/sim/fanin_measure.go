package sim

// Measuring the fan-in model's inputs on this machine: the size of a real
// heartbeat, the CPU a node spends hearing one (a stand-in for
// cluster.Membership.onHeartbeat and engine.Node.onPeer that needs no NATS),
// an aggregator's costs, and NATS' own per-message cost between two embedded
// servers.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/placement"
)

// heartbeatEpoch is when the simulated nodes measure their readings.
var heartbeatEpoch = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

func nodeName(i int) string { return fmt.Sprintf("node-%04d", i) }

// nodeResources are a node's custom resources: a partner API's rate limit,
// a database pool shared by the cluster and an SMS provider's rate limit
// (the examples of meter.ParseResource).
var nodeResources = []string{"github_api=5000/h,host=api.github.com", "db=20,scope=cluster,builtin=sql.*", "sms=10/s,burst=20,builtin=sms.send"}

// newResources returns nodeResources, the cluster's pool backed by a local
// one.
func newResources(now func() time.Time) *meter.Resources {
	specs, err := meter.ParseResources(nodeResources)
	if err != nil {
		panic("sim: " + err.Error())
	}
	res, err := meter.NewResources(specs, meter.ResourcesOptions{Now: now,
		Shared: func(s meter.ResourceSpec) meter.Limiter { return meter.NewPool(int(s.Capacity())) }})
	if err != nil {
		panic("sim: " + err.Error())
	}
	return res
}

// busyReading is the reading of a node that has run for days: seven builtins
// completed, six steps in flight, some resource units in use, as
// meter.Meter.Update fills it in.
var busyReading = sync.OnceValue(func() meter.Reading {
	m := &meter.Meter{Resources: newResources(func() time.Time { return heartbeatEpoch }), Now: func() time.Time { return heartbeatEpoch }}
	for _, b := range []struct {
		name       string
		done, busy int
	}{{"http.get", 48213, 3}, {"http.post", 9120, 0}, {"kv.get", 23871, 1}, {"kv.put", 7702, 0},
		{"sql.query", 15530, 2}, {"time.now", 61234, 0}, {"rand.int", 311, 0}} {
		for range b.done {
			m.Begin(b.name)()
		}
		for range b.busy {
			m.Begin(b.name)
		}
	}
	for range 52118 {
		m.Placed()
	}
	m.Resources.Take([]meter.Demand{{Resource: "github_api", Amount: 1}, {Resource: "db", Amount: 2}, {Resource: "sms", Amount: 3}})
	return m.Update(meter.Reading{Cores: 8, MemTotal: 32 << 30, HeapBytes: 187_392_816, Goroutines: 412})
})

// heartbeat returns node i's heartbeat as cluster.Membership publishes it:
// its addresses, start time, features and a busy node's meter reading.
func heartbeat(i int) api.NodeInfo {
	r := busyReading()
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	r.Node = nodeName(i)
	r.Time = heartbeatEpoch.Add(time.Duration(rng.Int64N(int64(time.Second))))
	r.CPU, r.Runnable = 0.3+0.6*rng.Float64(), float64(rng.IntN(12))
	r.MemUsed = uint64(float64(r.MemTotal) * (0.2 + 0.6*rng.Float64()))
	r.HeapBytes += uint64(rng.IntN(1 << 24))
	ip := fmt.Sprintf("10.0.%d.%d", i/250, i%250+2)
	return api.NodeInfo{Name: r.Node, HTTP: "http://" + ip + ":8080", NATS: "nats://" + ip + ":4222", Cluster: "nats://" + ip + ":6222",
		Started: heartbeatEpoch.Add(-73 * time.Hour).Add(time.Duration(rng.Int64N(int64(time.Hour)))), Reading: r, Features: journal.Features}
}

// heartbeats returns the encoded heartbeats of nodes 1..n.
func heartbeats(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		var err error
		if out[i], err = api.EncodeJSON(heartbeat(i + 1)); err != nil {
			panic("sim: " + err.Error())
		}
	}
	return out
}

// listener does with a heartbeat what a node does (cluster.Membership.
// onHeartbeat, then engine.Node.onPeer), without NATS.
type listener struct {
	mu    sync.Mutex
	nodes map[string]api.NodeInfo
	view  *placement.MemView
	peers meter.PeerBindings
	local *meter.Resources
}

// newListener returns a listener whose view reads the clock now (nil:
// time.Now).
func newListener(now func() time.Time) *listener {
	return &listener{nodes: map[string]api.NodeInfo{}, local: newResources(nil),
		view: placement.NewMemView(cluster.NodeTimeout, now)}
}

func (l *listener) hear(data []byte) {
	var info api.NodeInfo
	if json.Unmarshal(data, &info) != nil || info.Name == "" {
		return
	}
	info.Seen = time.Now()
	l.mu.Lock()
	l.nodes[info.Name] = info
	l.mu.Unlock()
	l.view.Put(info.Reading)
	l.peers.Note(info.Reading, l.local)
}

// summaryEntry is one node in an aggregator's summary: the fields of its
// reading that placement reads, with short keys and rounded figures. The
// static rest (addresses, features, resource kinds and bindings) would be
// published only when it changes.
type summaryEntry struct {
	Node     string                `json:"n"`
	Time     int64                 `json:"t"` // Unix milliseconds
	Cores    int                   `json:"c"`
	CPU      float64               `json:"u"`
	Runnable float64               `json:"r"`
	MemUsed  uint64                `json:"m"`
	MemTotal uint64                `json:"mt"`
	InFlight map[string]int        `json:"f,omitempty"`
	Placed   uint64                `json:"p"`
	Waiting  int                   `json:"w,omitempty"`
	Free     map[string][3]float64 `json:"x,omitempty"` // resource: free, capacity, waiting
}

// summary is what an aggregator publishes each interval.
type summary struct {
	From  string         `json:"from"`
	Nodes []summaryEntry `json:"nodes"`
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func entryOf(r meter.Reading) summaryEntry {
	e := summaryEntry{Node: r.Node, Time: r.Time.UnixMilli(), Cores: r.Cores, CPU: round3(r.CPU), Runnable: round3(r.Runnable),
		MemUsed: r.MemUsed, MemTotal: r.MemTotal, InFlight: r.InFlight, Placed: r.Placed, Waiting: r.Waiting}
	if len(r.Resources) > 0 {
		e.Free = make(map[string][3]float64, len(r.Resources))
		for name, st := range r.Resources {
			e.Free[name] = [3]float64{round3(st.Free), st.Capacity, float64(st.Waiting)}
		}
	}
	return e
}

func (e summaryEntry) reading() meter.Reading {
	r := meter.Reading{Node: e.Node, Time: time.UnixMilli(e.Time), Cores: e.Cores, CPU: e.CPU, Runnable: e.Runnable,
		MemUsed: e.MemUsed, MemTotal: e.MemTotal, InFlight: e.InFlight, Placed: e.Placed, Waiting: e.Waiting}
	for _, k := range e.InFlight {
		r.InFlightSum += k
	}
	if len(e.Free) > 0 {
		r.Resources = make(map[string]meter.ResourceState, len(e.Free))
		for name, f := range e.Free {
			r.Resources[name] = meter.ResourceState{Free: f[0], Capacity: f[1], Waiting: int(f[2])}
		}
	}
	return r
}

// aggregator hears every heartbeat and publishes summaries.
type aggregator struct {
	mu    sync.Mutex
	nodes map[string]api.NodeInfo
}

func (a *aggregator) collect(data []byte) {
	var info api.NodeInfo
	if json.Unmarshal(data, &info) != nil || info.Name == "" {
		return
	}
	info.Seen = time.Now()
	a.mu.Lock()
	a.nodes[info.Name] = info
	a.mu.Unlock()
}

// summarise encodes the summary of every node heard, sorted by name.
func (a *aggregator) summarise() []byte {
	a.mu.Lock()
	s := summary{From: nodeName(1), Nodes: make([]summaryEntry, 0, len(a.nodes))}
	for _, info := range a.nodes {
		s.Nodes = append(s.Nodes, entryOf(info.Reading))
	}
	a.mu.Unlock()
	slices.SortFunc(s.Nodes, func(x, y summaryEntry) int { return strings.Compare(x.Node, y.Node) })
	data, err := api.EncodeJSON(s)
	if err != nil {
		panic("sim: " + err.Error())
	}
	return data
}

// summaryView is a node's view replaced by each summary, as a batch put would
// (placement.MemView puts one reading at a time, copying its sorted slice).
type summaryView struct {
	mu    sync.Mutex
	nodes []placement.NodeState
}

// hear decodes a summary and replaces the view, carrying each node's placing
// rate over from its previous reading (both are sorted by name).
func (v *summaryView) hear(data []byte) {
	var s summary
	if json.Unmarshal(data, &s) != nil {
		return
	}
	now := time.Now()
	next := make([]placement.NodeState, len(s.Nodes))
	v.mu.Lock()
	defer v.mu.Unlock()
	j := 0
	for i, e := range s.Nodes {
		st := placement.NodeState{Reading: e.reading(), Seen: now}
		for j < len(v.nodes) && v.nodes[j].Node < e.Node {
			j++
		}
		if j < len(v.nodes) && v.nodes[j].Node == e.Node {
			prev := v.nodes[j]
			if dt := st.Time.Sub(prev.Time).Seconds(); dt > 0 && st.Placed >= prev.Placed {
				st.Placing = float64(st.Placed-prev.Placed) / dt
			} else {
				st.Placing = prev.Placing
			}
		}
		next[i] = st
	}
	v.nodes = next
}

// cpuMetric is the unit of the CPU per operation the benchmarks report: the
// process's CPU time, which counts the garbage collector's work on other cores.
const cpuMetric = "cpu-ns/op"

// cpuBench runs op b.N times and reports the process's CPU per op.
func cpuBench(b *testing.B, op func(i int)) {
	b.ReportAllocs()
	cpu0, ok := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		op(i)
	}
	b.StopTimer()
	if cpu, ok2 := cpuTime(); ok && ok2 {
		b.ReportMetric(float64(cpu-cpu0)/float64(b.N), cpuMetric)
	}
}

// benchHear measures a node that knows n nodes hearing their heartbeats in
// turn, placement reading its view after each one (a coordinator placing
// steps without pause). The view's clock is the heartbeats': a second goes
// by every n of them, as in the cluster, whatever this machine's speed.
func benchHear(n int) func(*testing.B) {
	hbs := heartbeats(n)
	return func(b *testing.B) {
		clock := time.Unix(1_000_000, 0)
		l := newListener(func() time.Time { return clock })
		for _, h := range hbs {
			l.hear(h)
		}
		tick := time.Second / time.Duration(n)
		cpuBench(b, func(i int) {
			clock = clock.Add(tick)
			l.hear(hbs[i%n])
			l.view.Nodes()
		})
	}
}

// benchCollect measures an aggregator that knows n nodes taking in their
// heartbeats in turn.
func benchCollect(n int) func(*testing.B) {
	hbs := heartbeats(n)
	return func(b *testing.B) {
		a := &aggregator{nodes: map[string]api.NodeInfo{}}
		for _, h := range hbs {
			a.collect(h)
		}
		cpuBench(b, func(i int) { a.collect(hbs[i%n]) })
	}
}

// fullAggregator returns an aggregator that heard n nodes.
func fullAggregator(n int) *aggregator {
	a := &aggregator{nodes: map[string]api.NodeInfo{}}
	for _, h := range heartbeats(n) {
		a.collect(h)
	}
	return a
}

// benchSummarise measures an aggregator encoding the summary of n nodes.
func benchSummarise(n int) func(*testing.B) {
	a := fullAggregator(n)
	return func(b *testing.B) { cpuBench(b, func(int) { a.summarise() }) }
}

// benchHearSummary measures a node replacing its view with a summary of n
// nodes.
func benchHearSummary(n int) func(*testing.B) {
	data := fullAggregator(n).summarise()
	return func(b *testing.B) {
		var v summaryView
		v.hear(data)
		cpuBench(b, func(int) { v.hear(data) })
	}
}

// natsPair is two embedded NATS servers joined by a route, as two nodes'
// buses are.
type natsPair struct {
	pub, sub *bus.Bus
	dirs     []string
}

func openNATSPair(ctx context.Context) (*natsPair, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("sim: free port: %w", err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	p := &natsPair{}
	buses := make([]*bus.Bus, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range buses {
		dir, err := os.MkdirTemp("", "drover-fanin-")
		if err != nil {
			return nil, err
		}
		p.dirs = append(p.dirs, dir)
		opts := bus.Options{Name: fmt.Sprintf("fanin%d", i+1), DataDir: dir, ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Peers: []string{fmt.Sprintf("nats://127.0.0.1:%d", ports[1-i])}}
		wg.Go(func() { buses[i], errs[i] = bus.Open(ctx, opts) })
	}
	wg.Wait()
	p.pub, p.sub = buses[0], buses[1]
	for _, err := range errs {
		if err != nil {
			p.close()
			return nil, fmt.Errorf("sim: embedded NATS: %w", err)
		}
	}
	return p, nil
}

func (p *natsPair) close() {
	for _, b := range []*bus.Bus{p.pub, p.sub} {
		if b != nil {
			b.Close()
		}
	}
	for _, d := range p.dirs {
		os.RemoveAll(d)
	}
}

// benchTransport returns a benchmark of publishing payload on subject from
// one server and receiving it on the other: the process's CPU per message
// counts both servers and both clients. Messages go in batches, each waited
// for, so that none is dropped as a slow consumer's.
func (p *natsPair) benchTransport(subject string, payload []byte) (func(*testing.B), func(), error) {
	var got, want atomic.Int64
	arrived := make(chan struct{}, 1)
	stop, err := p.sub.Subscribe(subject, func(bus.Msg) {
		if got.Add(1) >= want.Load() {
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	// Wait for the subscription to reach the other server, then for the
	// probes in flight.
	want.Store(1)
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() == 0 {
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("sim: %s: no message crossed the route in 10s", subject)
		}
		p.pub.Publish(subject, nil, payload)
		time.Sleep(10 * time.Millisecond)
	}
	for n := int64(-1); n != got.Load(); time.Sleep(100 * time.Millisecond) {
		n = got.Load()
	}
	batch := max(1, min(256, (8<<20)/len(payload)))
	return func(b *testing.B) {
		base := got.Load()
		cpuBench(b, func(i int) {
			if err := p.pub.Publish(subject, nil, payload); err != nil {
				b.Fatal(err)
			}
			if (i+1)%batch != 0 && i+1 != b.N {
				return
			}
			target := base + int64(i+1)
			want.Store(target)
			for got.Load() < target {
				select {
				case <-arrived:
				case <-time.After(10 * time.Second):
					b.Fatalf("%s: %d of %d messages arrived", subject, got.Load()-base, i+1)
				}
			}
		})
	}, stop, nil
}

// FanInOptions configures FanIn. The zero value measures FanInSizes and
// FanInDesigns and simulates placement with 30 seeds of 20 s.
type FanInOptions struct {
	Sizes   []int
	Designs []FanInDesign
	// Seeds and Window are the simulator's, for the placement columns
	// (Seeds < 0: not simulated).
	Seeds  int
	Window time.Duration
	// Progress receives a line per size measured (nil: none).
	Progress io.Writer
}

// FanIn measures the model's inputs at each size on this machine (a few
// seconds per size, with testing.Benchmark and two embedded NATS servers),
// models every design at every size, and simulates Drover's placement at load
// 0.8 with readings as old as each design's. The loads are by size, then
// design.
func FanIn(ctx context.Context, opts FanInOptions) ([]FanInLoad, error) {
	if len(opts.Sizes) == 0 {
		opts.Sizes = FanInSizes
	}
	if len(opts.Designs) == 0 {
		opts.Designs = FanInDesigns
	}
	if opts.Seeds == 0 {
		opts.Seeds = 30
	}
	if opts.Window <= 0 {
		opts.Window = 20 * time.Second
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	pair, err := openNATSPair(ctx)
	if err != nil {
		return nil, err
	}
	defer pair.close()
	hb := heartbeats(1)[0]
	transport, err := pair.cost(bus.NodeSubject(nodeName(1)), hb)
	if err != nil {
		return nil, err
	}
	var loads []FanInLoad
	for _, n := range opts.Sizes {
		if n < 1 {
			return nil, fmt.Errorf("sim: a cluster of %d nodes", n)
		}
		fmt.Fprintf(opts.Progress, "measuring %d nodes\n", n)
		sum := fullAggregator(n).summarise()
		c := FanInCosts{Nodes: n, HeartbeatBytes: len(hb), SummaryBytes: len(sum), Transport: transport}
		if c.TransportSummary, err = pair.cost(summarySubject, sum); err != nil {
			return nil, err
		}
		for _, m := range []struct {
			into  *time.Duration
			bench func(*testing.B)
		}{{&c.Hear, benchHear(n)}, {&c.Collect, benchCollect(n)}, {&c.Summarise, benchSummarise(n)}, {&c.HearSummary, benchHearSummary(n)}} {
			if *m.into, err = cost(m.bench); err != nil {
				return nil, err
			}
		}
		for _, d := range opts.Designs {
			loads = append(loads, Model(d, c))
		}
	}
	if opts.Seeds < 0 {
		return loads, nil
	}
	// The simulator's nodes publish every Interval: readings are Interval/2
	// old on average, so a design's age is simulated with twice that interval.
	var scs []Scenario
	for _, l := range loads {
		iv := 2 * l.Age
		if !slices.ContainsFunc(scs, func(sc Scenario) bool { return sc.Interval == iv }) {
			scs = append(scs, Scenario{ID: "fanin/" + iv.String(), Load: 0.8, Interval: iv})
		}
	}
	fmt.Fprintf(opts.Progress, "simulating placement at %d reading ages\n", len(scs))
	rows, err := Compare(scs, []string{"drover"}, opts.Seeds, opts.Window)
	if err != nil {
		return nil, err
	}
	for i := range loads {
		for _, r := range rows {
			if r.Scenario.Interval == 2*loads[i].Age {
				loads[i].Ratio, loads[i].P99 = r.Ratio, r.P99
			}
		}
	}
	return loads, nil
}

// cost runs a benchmark and returns the CPU per op.
func cost(f func(*testing.B)) (time.Duration, error) {
	r := testing.Benchmark(f)
	if r.N == 0 {
		return 0, fmt.Errorf("sim: benchmark failed")
	}
	if v, ok := r.Extra[cpuMetric]; ok {
		return time.Duration(v), nil
	}
	return time.Duration(r.NsPerOp()), nil
}

// cost measures NATS' CPU per message of payload on subject.
func (p *natsPair) cost(subject string, payload []byte) (time.Duration, error) {
	bench, stop, err := p.benchTransport(subject, payload)
	if err != nil {
		return 0, err
	}
	defer stop()
	return cost(bench)
}
