package placement

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/meter"
)

const gib = 1 << 30

// clock is a manual clock for tests.
type clock struct{ t time.Time }

func newClock() *clock                   { return &clock{t: time.Unix(1_000_000, 0)} }
func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

type nodeSpec struct {
	name  string
	cores int
	cpu   float64
	mem   uint64 // used, GiB
	total uint64 // GiB
	res   map[string]meter.ResourceState
	in    map[string]int
}

func rd(c *clock, n nodeSpec) meter.Reading {
	if n.total == 0 {
		n.total = 16
	}
	r := meter.Reading{Node: n.name, Time: c.Now(), Cores: n.cores, CPU: n.cpu, MemUsed: n.mem * gib, MemTotal: n.total * gib,
		Resources: n.res, InFlight: n.in}
	for _, k := range n.in {
		r.InFlightSum += k
	}
	return r
}

func rate(free, capacity, perSec float64) meter.ResourceState {
	return meter.ResourceState{Kind: meter.KindRate, Scope: meter.ScopeNode, Free: free, Capacity: capacity, Rate: perSec}
}

func pool(free, size float64) meter.ResourceState {
	return meter.ResourceState{Kind: meter.KindPool, Scope: meter.ScopeCluster, Free: free, Capacity: size}
}

func newTestPolicy(c *clock, nodes ...nodeSpec) (*Adaptive, *MemView) {
	v := NewMemView(3*time.Second, c.Now)
	for _, n := range nodes {
		v.Put(rd(c, n))
	}
	return NewAdaptive(v, Options{Now: c.Now, Rand: rand.New(rand.NewPCG(1, 2)), MaxWait: 10 * time.Second}), v
}

func TestAdaptivePlace(t *testing.T) {
	api := func(free float64) map[string]meter.ResourceState {
		return map[string]meter.ResourceState{"github_api": rate(free, 10, 1)}
	}
	tests := []struct {
		name    string
		nodes   []nodeSpec
		learn   map[string]Profile
		req     Request
		want    []string // any of these
		reason  []string // substrings of the reason
		wantErr error
		queued  string // resource a queued step waits for
	}{
		{name: "co-located when idle",
			nodes: []nodeSpec{{name: "n1", cores: 4}, {name: "n2", cores: 4}, {name: "n3", cores: 4}},
			req:   Request{Builtin: "x", Coordinator: "n2"}, want: []string{"n2"}, reason: []string{"drover: n2 (load 0.25, co-located)"}},
		{name: "busy coordinator loses",
			nodes: []nodeSpec{{name: "n1", cores: 2}, {name: "n2", cores: 2, cpu: 1}},
			req:   Request{Builtin: "x", Coordinator: "n2"}, want: []string{"n1"}, reason: []string{"over n2 (1.50)"}},
		{name: "node lacking the resource is ineligible",
			nodes: []nodeSpec{{name: "n1", cores: 8}, {name: "n2", cores: 1, res: api(5)}},
			req:   Request{Builtin: "http.get", Coordinator: "n1", Demands: []meter.Demand{{Resource: "github_api", Amount: 1}}},
			want:  []string{"n2"}, reason: []string{"n1 lacks github_api", "the only eligible of 2"}},
		{name: "exhausted bucket is ineligible",
			nodes: []nodeSpec{{name: "n1", cores: 8, res: api(0)}, {name: "n2", cores: 1, res: api(3)}},
			req:   Request{Builtin: "http.get", Coordinator: "n1", Demands: []meter.Demand{{Resource: "github_api", Amount: 1}}},
			want:  []string{"n2"}, reason: []string{"n1 github_api exhausted"}},
		{name: "resource nobody declares is not a constraint",
			nodes: []nodeSpec{{name: "n1", cores: 4}},
			req:   Request{Builtin: "x", Coordinator: "n1", Demands: []meter.Demand{{Resource: "license", Amount: 1}}}, want: []string{"n1"}},
		{name: "all exhausted: queued",
			nodes: []nodeSpec{{name: "n1", cores: 8, res: api(0)}, {name: "n2", cores: 1, res: api(0.5)}},
			req:   Request{Builtin: "http.get", Coordinator: "n1", Demands: []meter.Demand{{Resource: "github_api", Amount: 1}}}, queued: "github_api"},
		{name: "demand above capacity fails at once",
			nodes:   []nodeSpec{{name: "n1", cores: 8, res: map[string]meter.ResourceState{"db": pool(5, 5)}}},
			req:     Request{Builtin: "sql.query", Coordinator: "n1", Demands: []meter.Demand{{Resource: "db", Amount: 6}}},
			wantErr: ErrNoNode, reason: []string{"db holds fewer units than demanded"}},
		{name: "data-local",
			nodes: []nodeSpec{{name: "n1", cores: 8}, {name: "n2", cores: 8}, {name: "n3", cores: 8}},
			req:   Request{Builtin: "x", Coordinator: "n1", Prefer: "n3"}, want: []string{"n3"}, reason: []string{"data-local"}},
		{name: "learned memory rules out small nodes",
			nodes: []nodeSpec{{name: "n1", cores: 8, mem: 1, total: 2}, {name: "n2", cores: 2, mem: 1, total: 8}},
			learn: map[string]Profile{"hog": {Wall: time.Second, CPU: time.Second, Mem: 3 * gib}},
			req:   Request{Builtin: "hog", Coordinator: "n1"}, want: []string{"n2"}, reason: []string{"n1 short of memory"}},
		{name: "high memory shows in the reason",
			nodes: []nodeSpec{{name: "n1", cores: 8, mem: 13}, {name: "n2", cores: 8, mem: 2}},
			learn: map[string]Profile{"big": {Wall: time.Second, CPU: time.Second, Mem: 2 * gib}},
			req:   Request{Builtin: "big", Coordinator: "n1"}, want: []string{"n2"}, reason: []string{"over n1 (0.12, memory 94%)"}},
		{name: "memory that fits nowhere is not a constraint",
			nodes: []nodeSpec{{name: "n1", cores: 8, total: 2}},
			learn: map[string]Profile{"hog": {Wall: time.Second, CPU: time.Second, Mem: 64 * gib}},
			req:   Request{Builtin: "hog", Coordinator: "n1"}, want: []string{"n1"}},
		{name: "a four-core step avoids one-core nodes",
			nodes: []nodeSpec{{name: "n1", cores: 1}, {name: "n2", cores: 8, cpu: 0.25}},
			learn: map[string]Profile{"par": {Wall: time.Second, CPU: 4 * time.Second}},
			req:   Request{Builtin: "par", Coordinator: "n1"}, want: []string{"n2"}},
		{name: "declared cores count before the builtin is measured",
			nodes: []nodeSpec{{name: "n1", cores: 2}, {name: "n2", cores: 8, cpu: 0.3}},
			req:   Request{Builtin: "par", Coordinator: "n1", Demands: []meter.Demand{{Resource: meter.CPU, Amount: 4}}}, want: []string{"n2"}},
		{name: "declared memory counts before the builtin is measured",
			nodes: []nodeSpec{{name: "n1", cores: 8, mem: 3, total: 4}, {name: "n2", cores: 1, total: 16}},
			req:   Request{Builtin: "big", Coordinator: "n1", Demands: []meter.Demand{{Resource: meter.Memory, Amount: 2 * gib}}}, want: []string{"n2"}},
		{name: "measured memory beats an under-declared hint",
			nodes: []nodeSpec{{name: "n1", cores: 8, mem: 1, total: 4}, {name: "n2", cores: 1, total: 16}},
			learn: map[string]Profile{"hog": {Wall: time.Second, CPU: time.Second, Mem: 6 * gib}},
			req:   Request{Builtin: "hog", Coordinator: "n1", Demands: []meter.Demand{{Resource: meter.Memory, Amount: 256 << 20}}}, want: []string{"n2"}},
		{name: "in-flight steps count by their profile",
			nodes: []nodeSpec{{name: "n1", cores: 2, in: map[string]int{"par": 1}}, {name: "n2", cores: 2, in: map[string]int{"io": 6}}},
			learn: map[string]Profile{"par": {Wall: time.Second, CPU: 2 * time.Second}, "io": {Wall: time.Second, CPU: time.Millisecond}},
			req:   Request{Builtin: "x"}, want: []string{"n2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			p, _ := newTestPolicy(c, tt.nodes...)
			for b, pr := range tt.learn {
				p.Observe(b, pr.Wall, pr.CPU, pr.Mem)
			}
			d, q, err := p.TryPlace(tt.req, c.Now())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				for _, s := range tt.reason {
					if !strings.Contains(err.Error(), s) {
						t.Fatalf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if tt.queued != "" {
				if q == nil || q.Resource != tt.queued || q.Retry <= 0 {
					t.Fatalf("want queued on %s, got %+v %+v", tt.queued, d, q)
				}
				return
			}
			if q != nil {
				t.Fatalf("queued on %+v", q)
			}
			ok := false
			for _, w := range tt.want {
				ok = ok || d.Node == w
			}
			if !ok {
				t.Fatalf("node %s (%s), want one of %v", d.Node, d.Reason, tt.want)
			}
			for _, s := range tt.reason {
				if !strings.Contains(d.Reason, s) {
					t.Fatalf("reason %q lacks %q", d.Reason, s)
				}
			}
		})
	}
}

func TestAdaptiveNoNodes(t *testing.T) {
	p := NewAdaptive(NewMemView(0, nil), Options{})
	d, err := p.Place(context.Background(), Request{Builtin: "x", Coordinator: "me"})
	if err != nil || d.Node != "me" {
		t.Fatalf("no readings yet: %+v %v", d, err)
	}
	if _, err := p.Place(context.Background(), Request{Builtin: "x"}); !errors.Is(err, ErrNoNode) {
		t.Fatalf("no nodes and no coordinator: %v", err)
	}
}

func TestAdaptiveDeterministic(t *testing.T) {
	run := func() string {
		c := newClock()
		var nodes []nodeSpec
		for i := range 16 {
			nodes = append(nodes, nodeSpec{name: fmt.Sprintf("n%02d", i), cores: 1 + i%4, cpu: float64(i%5) / 5,
				in: map[string]int{"a": i % 3, "b": i % 2, "c": 1}})
		}
		p, _ := newTestPolicy(c, nodes...)
		p.Observe("a", time.Second, 300*time.Millisecond, 0)
		p.Observe("b", time.Second, 700*time.Millisecond, 0)
		var b strings.Builder
		for i := range 200 {
			d, _, err := p.TryPlace(Request{Builtin: "a", Coordinator: fmt.Sprintf("n%02d", i%16)}, c.Now())
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(d.Reason + "\n")
			c.Advance(time.Millisecond)
		}
		return b.String()
	}
	if a, b := run(), run(); a != b {
		t.Fatal("same seed, different decisions")
	}
}
