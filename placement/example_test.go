package placement_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/placement"
)

// The engine keeps a MemView from the nodes' published readings, builds the
// production policy on it, asks it where each step runs and tells it what
// each completed step cost.
func ExampleAdaptive() {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	view := placement.NewMemView(3*time.Second, clock)
	api := map[string]meter.ResourceState{
		"github_api": {Kind: meter.KindRate, Scope: meter.ScopeNode, Free: 4000, Capacity: 5000, Rate: 5000.0 / 3600},
	}
	view.Put(meter.Reading{Node: "n1", Time: now, Cores: 8, CPU: 0.20})
	view.Put(meter.Reading{Node: "n2", Time: now, Cores: 4, CPU: 0.25, Resources: api})
	view.Put(meter.Reading{Node: "n3", Time: now, Cores: 4, CPU: 0.70, Resources: api})

	p := placement.NewAdaptive(view, placement.Options{Now: clock, Rand: rand.New(rand.NewPCG(1, 1))})
	p.Observe("http.get", 150*time.Millisecond, 2*time.Millisecond, 20<<20) // wall, CPU, memory

	d, err := p.Place(context.Background(), placement.Request{Run: "r1", Step: "1", Builtin: "http.get", Coordinator: "n1",
		Demands: []meter.Demand{{Resource: "github_api", Amount: 1}}})
	fmt.Println(d.Node, err)
	fmt.Println(d.Reason)
	// Output:
	// n2 <nil>
	// drover: n2 (load 0.25) over n3 (0.70); n1 lacks github_api
}
