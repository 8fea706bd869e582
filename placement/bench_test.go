package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/droverhq/drover/meter"
)

// BenchmarkPlace64Nodes measures one decision of the production policy on a
// 64-node cluster: heterogeneous cores, six builtins in flight, a node-scoped
// and a group-scoped rate limit, a cluster pool, learned profiles, and a
// fresh reading of one node every 16 decisions (every node about once a
// second at 1,000 decisions per second by one coordinator). It reports the
// p50 and p99 of a single decision, and the fraction of decisions that were
// to wait.
func BenchmarkPlace64Nodes(b *testing.B) {
	c := newClock()
	v := NewMemView(3*time.Second, c.Now)
	builtins := []string{"http.get", "http.post", "sql.query", "render", "tiny", "hog"}
	cores := []int{1, 2, 4, 8, 16, 32}
	reading := func(i int, rng *rand.Rand) meter.Reading {
		res := map[string]meter.ResourceState{
			"db": {Kind: meter.KindPool, Scope: meter.ScopeCluster, Free: float64(rng.IntN(20)), Capacity: 20},
		}
		if i%2 == 0 {
			sc := meter.ScopeNode
			if i%8 == 0 {
				sc = meter.GroupScope("nat-a")
			}
			res["github_api"] = meter.ResourceState{Kind: meter.KindRate, Scope: sc, Free: float64(rng.IntN(50)), Capacity: 50, Rate: 50}
		}
		in := map[string]int{}
		for _, bn := range builtins {
			in[bn] = rng.IntN(4)
		}
		r := meter.Reading{Node: fmt.Sprintf("node-%02d", i), Time: c.Now(), Cores: cores[i%len(cores)], CPU: rng.Float64(),
			MemUsed: uint64(rng.IntN(8)) << 30, MemTotal: 16 << 30, InFlight: in, Resources: res}
		if i == 3 { // the one coordinator: 1,000 steps/s
			r.Placed = uint64(c.Now().Sub(time.Unix(1_000_000, 0)) / time.Millisecond)
		}
		return r
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 2 { // two readings each, for placement rates
		for i := range 64 {
			v.Put(reading(i, rng))
		}
		c.Advance(time.Second)
	}
	p := NewAdaptive(v, Options{Now: c.Now, Rand: rand.New(rand.NewPCG(1, 1))})
	p.Observe("http.get", 150*time.Millisecond, 2*time.Millisecond, 20<<20)
	p.Observe("http.post", 200*time.Millisecond, 3*time.Millisecond, 20<<20)
	p.Observe("sql.query", 50*time.Millisecond, 10*time.Millisecond, 50<<20)
	p.Observe("render", time.Second, 4*time.Second, 1<<30)
	p.Observe("tiny", 2*time.Millisecond, 2*time.Millisecond, 1<<20)
	p.Observe("hog", 300*time.Millisecond, 300*time.Millisecond, 3<<30)
	reqs := []Request{
		{Builtin: "tiny", Coordinator: "node-03"},
		{Builtin: "http.get", Coordinator: "node-03", Demands: []meter.Demand{{Resource: "github_api", Amount: 1}}},
		{Builtin: "sql.query", Coordinator: "node-03", Demands: []meter.Demand{{Resource: "db", Amount: 1}}},
		{Builtin: "render", Coordinator: "node-03", Prefer: "node-41", Demands: []meter.Demand{{Resource: meter.CPU, Amount: 4}}},
		{Builtin: "hog", Coordinator: "node-03"},
	}
	lat := make([]time.Duration, 0, b.N)
	queued := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%16 == 15 {
			v.Put(reading(i/16%64, rng))
		}
		c.Advance(time.Millisecond)
		start := time.Now()
		d, q, err := p.TryPlace(reqs[i%len(reqs)], c.Now())
		lat = append(lat, time.Since(start))
		switch {
		case err != nil:
			b.Fatal(err)
		case q != nil:
			queued++ // a decision too: wait for this resource
		case d.Node == "":
			b.Fatal("no node and no wait")
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(queued)/float64(b.N), "queued/op")
}
