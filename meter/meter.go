// Package meter measures a node: in-flight steps per builtin, and (as the
// cluster grows) CPU, memory and the free units of custom resources. Placement
// reads what meters publish.
package meter

import (
	"runtime"
	"sort"
	"sync"
)

// Meter counts the steps a node is executing. The zero value is ready to use.
type Meter struct {
	mu       sync.Mutex
	inFlight map[string]int
	done     map[string]uint64
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

// Reading is a snapshot of a node's meter.
type Reading struct {
	InFlight     map[string]int    `json:"in_flight"`
	Completed    map[string]uint64 `json:"completed"`
	HeapBytes    uint64            `json:"heap_bytes"`
	Goroutines   int               `json:"goroutines"`
	InFlightSum  int               `json:"in_flight_total"`
	BuiltinNames []string          `json:"-"`
}

// Read returns the current reading.
func (m *Meter) Read() Reading {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := Reading{InFlight: map[string]int{}, Completed: map[string]uint64{}, HeapBytes: ms.HeapAlloc, Goroutines: runtime.NumGoroutine()}
	m.mu.Lock()
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
	return r
}
