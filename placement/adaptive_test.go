package placement

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
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

func TestAdaptiveQueueThenFail(t *testing.T) {
	c := newClock()
	p, v := newTestPolicy(c, nodeSpec{name: "n1", cores: 4, res: map[string]meter.ResourceState{"sms": rate(0, 2, 0.5)}})
	req := Request{Builtin: "sms.send", Coordinator: "n1", Demands: []meter.Demand{{Resource: "sms", Amount: 1}}}
	since := c.Now()
	_, q, err := p.TryPlace(req, since)
	if err != nil || q == nil || q.Resource != "sms" || q.Retry != 2*time.Second {
		t.Fatalf("want a 2s wait for sms (0.5/s), got %+v, %v", q, err)
	}
	c.Advance(q.Retry)
	d, q, err := p.TryPlace(req, since)
	if err != nil || q != nil || d.Node != "n1" || d.Waited != 2*time.Second || !strings.Contains(d.Reason, "waited 2s") {
		t.Fatalf("after the refill: %+v %+v %v", d, q, err)
	}
	// The token is reserved: the next step waits again, and fails after MaxWait.
	since = c.Now()
	if _, q, _ = p.TryPlace(req, since); q == nil {
		t.Fatal("the reservation should hold the refilled token")
	}
	c.Advance(10 * time.Second)
	v.Put(rd(c, nodeSpec{name: "n1", cores: 4, res: map[string]meter.ResourceState{"sms": rate(0, 2, 0)}})) // the rate dropped to zero
	_, q, err = p.TryPlace(req, since)
	var ne *NoNodeError
	if q != nil || !errors.Is(err, ErrNoNode) || !errors.As(err, &ne) || ne.Resource != "sms" || ne.Waited != 10*time.Second ||
		!strings.Contains(err.Error(), "exhausted on all 1 nodes that have it") {
		t.Fatalf("after the max wait: %+v, %v", q, err)
	}
}

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

func TestAdaptivePlaceWaits(t *testing.T) {
	v := NewMemView(0, nil)
	empty := map[string]meter.ResourceState{"db": {Kind: meter.KindPool, Scope: meter.ScopeNode, Free: 0, Capacity: 1}}
	v.Put(meter.Reading{Node: "n1", Cores: 2, Resources: empty})
	p := NewAdaptive(v, Options{Retry: time.Hour})
	req := Request{Builtin: "sql.query", Coordinator: "n1", Demands: []meter.Demand{{Resource: "db", Amount: 1}}}
	done := make(chan error)
	go func() {
		d, err := p.Place(context.Background(), req)
		if err == nil && (d.Node != "n1" || !strings.HasSuffix(d.Reason, " for db")) {
			err = fmt.Errorf("placed on %s: %s", d.Node, d.Reason)
		}
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for p.Waiting()["db"] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the waiting step is not visible in Waiting")
		}
		runtime.Gosched()
	}
	free := map[string]meter.ResourceState{"db": {Kind: meter.KindPool, Scope: meter.ScopeNode, Free: 1, Capacity: 1}}
	v.Put(meter.Reading{Node: "n1", Cores: 2, Resources: free}) // wakes the waiter long before Retry
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(p.Waiting()) != 0 {
		t.Fatalf("queue after: %v", p.Waiting())
	}

	// Cancelled while waiting: the error names the resource and wraps both causes.
	v.Put(meter.Reading{Node: "n1", Cores: 2, Resources: empty})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Place(ctx, req)
	if !errors.Is(err, ErrNoNode) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "db") {
		t.Fatalf("cancelled wait: %v", err)
	}
	// Bounded by MaxWait.
	short := NewAdaptive(v, Options{MaxWait: time.Millisecond})
	if _, err := short.Place(context.Background(), req); !errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), "max wait") {
		t.Fatalf("past the max wait: %v", err)
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

func TestMemView(t *testing.T) {
	c := newClock()
	v := NewMemView(3*time.Second, c.Now)
	ch := v.Changed()
	v.Put(meter.Reading{Node: "b"})
	select {
	case <-ch:
	default:
		t.Fatal("Put must signal Changed")
	}
	c.Advance(2 * time.Second)
	v.Put(meter.Reading{Node: "a"})
	if n := v.Nodes(); len(n) != 2 || n[0].Node != "a" || n[1].Node != "b" || !n[0].Seen.Equal(c.Now()) {
		t.Fatalf("nodes: %+v", n)
	}
	c.Advance(time.Second) // b expires
	if n := v.Nodes(); len(n) != 1 || n[0].Node != "a" {
		t.Fatalf("after b's TTL: %+v", n)
	}
	v.Delete("a")
	if n := v.Nodes(); len(n) != 0 {
		t.Fatalf("after delete: %+v", n)
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

func TestProfiles(t *testing.T) {
	p := NewProfiles(0.5)
	p.Observe("x", 100*time.Millisecond, -1, -1) // CPU not measured: assume it computed throughout
	if pr, _ := p.Get("x"); pr.CPU != 100*time.Millisecond || pr.Cores() != 1 || pr.Mem != 0 {
		t.Fatalf("first: %+v", pr)
	}
	p.Observe("x", 300*time.Millisecond, 0, 1000)
	pr, ok := p.Get("x")
	if !ok || pr.Wall != 200*time.Millisecond || pr.CPU != 50*time.Millisecond || pr.Mem != 500 || pr.Samples != 2 {
		t.Fatalf("second: %+v", pr)
	}
	if _, ok := p.Get("y"); ok || len(p.All()) != 1 {
		t.Fatal("unknown builtin")
	}
	// Peak cores: a four-core step seen alone, then slowed on busy nodes.
	p.Observe("par", time.Second, 4*time.Second, 0)
	for range 3 {
		p.Observe("par", 4*time.Second, 4*time.Second, 0)
	}
	if pr, _ := p.Get("par"); pr.Cores() < 3.5 {
		t.Fatalf("peak cores %v: busy nodes should not hide a four-core step", pr.Cores())
	}
}

func TestBaselines(t *testing.T) {
	c := newClock()
	v := NewMemView(0, c.Now)
	v.Put(rd(c, nodeSpec{name: "n1", cores: 2, cpu: 0.9}))
	v.Put(rd(c, nodeSpec{name: "n2", cores: 2, cpu: 0.1}))
	v.Put(rd(c, nodeSpec{name: "n3", cores: 2, cpu: 0.5}))
	empty := NewMemView(0, nil)
	rng := func() *rand.Rand { return rand.New(rand.NewPCG(3, 4)) }
	tests := []struct {
		name    string
		p       Policy
		want    []string // successive decisions ("" = any)
		wantErr error
	}{
		{name: "round robin", p: NewRoundRobin(v), want: []string{"n1", "n2", "n3", "n1"}},
		{name: "least loaded", p: NewLeastLoaded(v), want: []string{"n2", "n2"}},
		{name: "p2c never picks the most loaded", p: NewPowerOfTwo(v, rng()), want: []string{"!n1", "!n1", "!n1", "!n1"}},
		{name: "random", p: NewRandom(v, rng()), want: []string{""}},
		{name: "round robin empty", p: NewRoundRobin(empty), wantErr: ErrNoNode},
		{name: "least loaded empty", p: NewLeastLoaded(empty), wantErr: ErrNoNode},
		{name: "p2c empty", p: NewPowerOfTwo(empty, rng()), wantErr: ErrNoNode},
		{name: "random empty", p: NewRandom(empty, rng()), wantErr: ErrNoNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr != nil {
				if _, err := tt.p.Place(context.Background(), Request{}); !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			for _, w := range tt.want {
				d, err := tt.p.Place(context.Background(), Request{})
				if err != nil || d.Reason == "" {
					t.Fatalf("%+v %v", d, err)
				}
				if not, ok := strings.CutPrefix(w, "!"); ok && d.Node == not || !ok && w != "" && d.Node != w {
					t.Fatalf("node %s, want %s", d.Node, w)
				}
			}
		})
	}
}
