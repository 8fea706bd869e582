// Package meter measures a node: CPU, cores, memory, the steps it executes
// per builtin, and its custom resources — rate limits (TokenBucket) and
// concurrency pools (Pool) declared in node configuration (ParseResource) and
// enforced by the worker (Resources). A node publishes its Reading about once
// a second; placement reads what every node published.
package meter

import (
	"runtime"
	"sort"
	"sync"
	"time"
)

// Meter counts the steps a node is executing and reads the node's meters.
// The zero value is ready to use; set the exported fields before first use.
type Meter struct {
	// Node names the node in readings.
	Node string
	// Resources are the node's custom resources (nil: none).
	Resources *Resources
	// Host measures CPU and memory (nil: a Sampler of this machine).
	Host interface{ Sample() Host }
	// Now is the clock stamped on readings (default time.Now).
	Now func() time.Time

	mu       sync.Mutex
	inFlight map[string]int
	done     map[string]uint64
	placed   uint64
	sampler  Sampler
	full     Reading // the latest full reading (ReadEvery)
}

// Placed records that this node, as a run's coordinator, placed a step
// (anywhere). Coordinators compare their placement rates to estimate how
// much of a node's load since its last reading came from the others.
func (m *Meter) Placed() {
	m.mu.Lock()
	m.placed++
	m.mu.Unlock()
}

// Begin records that a step of builtin started; call the returned func when it ends.
func (m *Meter) Begin(builtin string) (end func()) {
	m.mu.Lock()
	if m.inFlight == nil {
		m.inFlight, m.done = map[string]int{}, map[string]uint64{}
	}
	m.inFlight[builtin]++
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		m.inFlight[builtin]--
		m.done[builtin]++
		m.mu.Unlock()
	}
}

// Reading is a snapshot of a node's meters: what it publishes about once a
// second, and what placement reads.
type Reading struct {
	// Node is the node's name and Time when it was measured.
	Node string    `json:"node"`
	Time time.Time `json:"time"`
	// Cores is the number of cores the node may use; CPU is their
	// utilisation since the previous reading (0..1).
	Cores int     `json:"cores"`
	CPU   float64 `json:"cpu"`
	// Runnable is the number of tasks ready to use a core when measured,
	// running or waiting for one: unlike CPU, it shows how far a node is
	// over-committed.
	Runnable float64 `json:"runnable"`
	// MemUsed and MemTotal are bytes in use and available (0: unknown).
	MemUsed  uint64 `json:"mem_used"`
	MemTotal uint64 `json:"mem_total"`
	// InFlight is the number of steps executing per builtin; InFlightSum
	// their total.
	InFlight    map[string]int `json:"in_flight"`
	InFlightSum int            `json:"in_flight_total"`
	// Completed counts the steps executed per builtin since the node started.
	Completed map[string]uint64 `json:"completed"`
	// Placed counts the steps this node placed as a coordinator since it
	// started.
	Placed uint64 `json:"placed"`
	// Resources is the state of each custom resource, by name.
	Resources map[string]ResourceState `json:"resources,omitempty"`
	// Waiting is the number of steps waiting for resource units.
	Waiting int `json:"waiting"`
	// HeapBytes and Goroutines describe the node's own process.
	HeapBytes  uint64 `json:"heap_bytes"`
	Goroutines int    `json:"goroutines"`
	// BuiltinNames lists the builtins in Completed, sorted.
	BuiltinNames []string `json:"-"`
}

// Load is a node's load as simple policies see it: the larger of its CPU
// utilisation and its executing steps per core.
func (r *Reading) Load() float64 {
	l := r.CPU
	if c := max(r.Cores, 1); float64(r.InFlightSum)/float64(c) > l {
		l = float64(r.InFlightSum) / float64(c)
	}
	return l
}

// Read returns the current reading: host, steps and resources.
func (m *Meter) Read() Reading {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var h Host
	if m.Host != nil {
		h = m.Host.Sample()
	} else {
		h = m.sampler.Sample()
	}
	r := Reading{Node: m.Node, Cores: h.Cores, CPU: h.CPU, Runnable: h.Runnable, MemUsed: h.MemUsed, MemTotal: h.MemTotal,
		HeapBytes: ms.HeapAlloc, Goroutines: runtime.NumGoroutine()}
	return m.Update(r)
}

// ReadEvery is Read for readings taken every period and sometimes sooner
// (a heartbeat asked for early): within half a period of the latest full
// reading it returns a cheap Update of that one, so that CPU is always
// measured over about a period. Calls must not overlap.
func (m *Meter) ReadEvery(period time.Duration) Reading {
	if !m.full.Time.IsZero() && time.Since(m.full.Time) < period/2 {
		return m.Update(m.full)
	}
	m.full = m.Read()
	return m.full
}

// Update returns r with its time, steps, placements and resources read now,
// and its host figures (CPU, memory) left as they were: a cheap reading
// between two full ones, for when resources change (pool units given back)
// and peers should know before the next full reading.
func (m *Meter) Update(r Reading) Reading {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	r.Time = now()
	r.InFlight, r.InFlightSum, r.Completed, r.BuiltinNames = map[string]int{}, 0, map[string]uint64{}, nil
	m.mu.Lock()
	r.Placed = m.placed
	for k, v := range m.inFlight {
		if v > 0 {
			r.InFlight[k] = v
			r.InFlightSum += v
		}
	}
	for k, v := range m.done {
		r.Completed[k] = v
		r.BuiltinNames = append(r.BuiltinNames, k)
	}
	m.mu.Unlock()
	sort.Strings(r.BuiltinNames)
	r.Resources, r.Waiting = nil, 0
	if m.Resources != nil {
		r.Resources = m.Resources.States()
		for _, st := range r.Resources {
			r.Waiting += st.Waiting
		}
	}
	return r
}
