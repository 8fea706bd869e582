package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/droverhq/drover/meter"
)

func TestAdaptiveSharedScope(t *testing.T) {
	c := newClock()
	grp := func(free float64) map[string]meter.ResourceState {
		st := rate(free, 5, 1)
		st.Scope = meter.GroupScope("ip-a")
		return map[string]meter.ResourceState{"api": st}
	}
	v := NewMemView(0, c.Now)
	v.Put(rd(c, nodeSpec{name: "n1", cores: 4, res: grp(5)})) // old reading
	c.Advance(500 * time.Millisecond)
	v.Put(rd(c, nodeSpec{name: "n2", cores: 4, res: grp(1)})) // fresher: the group's bucket has 1 token
	p := NewAdaptive(v, Options{Now: c.Now, Rand: rand.New(rand.NewPCG(1, 2))})
	req := Request{Builtin: "http.get", Coordinator: "n1", Demands: []meter.Demand{{Resource: "api", Amount: 1}}}
	if d, q, err := p.TryPlace(req, c.Now()); err != nil || q != nil {
		t.Fatalf("first: %+v %+v %v", d, q, err)
	}
	// The group's one token is reserved, whichever node took it.
	if _, q, _ := p.TryPlace(req, c.Now()); q == nil || q.Resource != "api" {
		t.Fatalf("second step should wait for the group's bucket, got %+v", q)
	}
	// A newer reading of any group member that shows the token spent clears the reservation.
	c.Advance(time.Second)
	v.Put(rd(c, nodeSpec{name: "n1", cores: 4, res: grp(1)}))
	if _, q, err := p.TryPlace(req, c.Now()); err != nil || q != nil {
		t.Fatalf("after a newer reading: %+v %v", q, err)
	}
}

func TestAdaptiveReservationsSpread(t *testing.T) {
	c := newClock()
	var nodes []nodeSpec
	for i := range 4 {
		nodes = append(nodes, nodeSpec{name: fmt.Sprintf("n%d", i+1), cores: 2})
	}
	p, v := newTestPolicy(c, nodes...)
	p.Observe("work", time.Second, time.Second, 0)
	count := map[string]int{}
	for range 8 { // placed within one reading interval: the readings say every node is idle
		d, _, err := p.TryPlace(Request{Builtin: "work", Coordinator: "n1"}, c.Now())
		if err != nil {
			t.Fatal(err)
		}
		count[d.Node]++
		c.Advance(time.Millisecond)
	}
	for n, k := range count {
		if k > 3 {
			t.Fatalf("%s got %d of 8 one-core steps on 2 cores despite reservations: %v", n, k, count)
		}
	}
	// Newer readings clear the reservations: n1 reads busy now, the others idle.
	c.Advance(time.Millisecond)
	for _, n := range nodes {
		if n.name == "n1" {
			n.cpu = 1
		}
		v.Put(rd(c, n))
	}
	d, _, err := p.TryPlace(Request{Builtin: "work"}, c.Now())
	if err != nil || d.Node == "n1" {
		t.Fatalf("after new readings: %+v %v", d, err)
	}
	kept := 0
	for _, pn := range p.per {
		kept += len(pn.resv)
	}
	if kept != 1 {
		t.Fatalf("%d reservations kept, want only the newest", kept)
	}
}

func TestCoordinators(t *testing.T) {
	c := newClock()
	v := NewMemView(0, c.Now)
	put := func(placed ...uint64) {
		for i, p := range placed {
			v.Put(meter.Reading{Node: fmt.Sprintf("n%d", i+1), Time: c.Now(), Placed: p})
		}
		c.Advance(time.Second)
	}
	if got := coordinators(v.Nodes(), "n1"); got != 0 {
		t.Fatalf("no nodes: %v", got)
	}
	put(0, 0, 0, 0)
	if got := coordinators(v.Nodes(), "n1"); got != 4 {
		t.Fatalf("no rates known: %v, want the 4 nodes", got)
	}
	put(100, 100, 0, 0) // n1 and n2 each placed 100 steps in the second
	if n := v.Nodes(); n[0].Placing != 100 || n[2].Placing != 0 {
		t.Fatalf("rates: %+v", n)
	}
	tests := []struct {
		name  string
		coord string
		want  float64
	}{
		{"half of the placements", "n1", 2},
		{"a coordinator placing nothing stands for at most all nodes", "n3", 4},
		{"unknown coordinator", "nx", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := coordinators(v.Nodes(), tt.coord); got != tt.want {
				t.Fatalf("coordinators = %v, want %v", got, tt.want)
			}
		})
	}
	put(400, 100, 0, 0) // only n1 places now
	if got := coordinators(v.Nodes(), "n1"); got != 1 {
		t.Fatalf("the only coordinator: %v, want 1", got)
	}
}
