package placement

import (
	"math"
	"time"

	"github.com/droverhq/drover/meter"
)

// prediction is what a profile says about one step, in seconds and bytes:
// cpuWall is its computing time on its own cores, io the rest of its time.
type prediction struct {
	wall, cpuWall, io float64
	cores             float64
	mem               float64
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

// inflightTerm is k executing steps of one builtin.
type inflightTerm struct {
	k           int64
	cores, wall float64
	mem         float64
	profiled    bool
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
