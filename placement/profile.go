package placement

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// A Profile is what placement has learned about one builtin's steps: moving
// averages (EWMA) of their wall time, CPU time and memory, and the most cores
// they were seen to keep busy.
type Profile struct {
	Wall    time.Duration `json:"wall"`
	CPU     time.Duration `json:"cpu"`
	Mem     int64         `json:"mem"` // bytes
	Samples int           `json:"samples"`
	// Peak is the most cores (CPU time over wall time) a step was seen to
	// use, decaying slowly toward lower samples: a step sharing a busy node
	// uses fewer cores than it would alone, so the average understates
	// what it asks for.
	Peak float64 `json:"peak"`
}

// Cores is the number of cores a step is expected to keep busy when it
// runs alone: about 0 for a step that waits on the network, 1 for a
// single-threaded computation, 4 for one that keeps four cores busy.
func (p Profile) Cores() float64 {
	if p.Peak > 0 {
		return p.Peak
	}
	if p.Wall <= 0 {
		return 1
	}
	return float64(p.CPU) / float64(p.Wall)
}

// peakDecay is how far the peak moves toward a lower sample.
const peakDecay = 0.05

// Profiles learns a Profile per builtin from completed steps. It is safe for
// concurrent use.
type Profiles struct {
	alpha float64
	ver   atomic.Uint64 // bumped by every Observe
	mu    sync.RWMutex
	m     map[string]Profile
}

// NewProfiles returns empty profiles whose averages give each new sample the
// weight alpha (0 < alpha ≤ 1; out of range means 0.2).
func NewProfiles(alpha float64) *Profiles {
	if alpha <= 0 || alpha > 1 {
		alpha = 0.2
	}
	return &Profiles{alpha: alpha, m: map[string]Profile{}}
}

// Short reports whether builtin was measured at least three times and its
// typical wall time is under below.
func (p *Profiles) Short(builtin string, below time.Duration) bool {
	pr, measured := p.Get(builtin)
	return measured && pr.Samples >= 3 && pr.Wall < below
}

// Observe learns from one completed step (or failed attempt) of builtin. A
// negative cpu or mem means it was not measured: that average is left as it
// is (a first sample without CPU time assumes the step computed throughout).
func (p *Profiles) Observe(builtin string, wall, cpu time.Duration, mem int64) {
	if wall < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.ver.Add(1)
	pr, ok := p.m[builtin]
	if !ok {
		pr = Profile{Wall: wall, CPU: cpu, Mem: max(mem, 0), Samples: 1}
		if cpu < 0 {
			pr.CPU = wall
		}
		pr.Peak = cores(wall, pr.CPU)
		p.m[builtin] = pr
		return
	}
	ewma := func(old, v float64) float64 { return old + p.alpha*(v-old) }
	pr.Wall = time.Duration(ewma(float64(pr.Wall), float64(wall)))
	if cpu >= 0 {
		pr.CPU = time.Duration(ewma(float64(pr.CPU), float64(cpu)))
		if c := cores(wall, cpu); c >= pr.Peak {
			pr.Peak = c
		} else {
			pr.Peak += peakDecay * (c - pr.Peak)
		}
	}
	if mem >= 0 {
		pr.Mem = int64(ewma(float64(pr.Mem), float64(mem)))
	}
	pr.Samples++
	p.m[builtin] = pr
}

func cores(wall, cpu time.Duration) float64 {
	if wall <= 0 {
		return 1
	}
	return float64(cpu) / float64(wall)
}

// Get returns builtin's profile, if any step of it was observed.
func (p *Profiles) Get(builtin string) (Profile, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pr, ok := p.m[builtin]
	return pr, ok
}

// All returns a copy of every profile, by builtin (for `ctl nodes` and tests).
func (p *Profiles) All() map[string]Profile {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return maps.Clone(p.m)
}
