package bustest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/bus"
)

// A Floor is what journal appends cost on a bus: the floor under every
// step's cost, measured beside the step in the same benchmark run.
type Floor struct {
	Appends  int
	Elapsed  time.Duration // wall time of all appends
	P50, P99 time.Duration // of one append
	CPU      time.Duration // the process's CPU time over all appends
	// Latencies are every append's, sorted.
	Latencies []time.Duration
}

// Add returns the floor of f's appends and g's together: measured in turns
// with what they are the floor of, so that both see the machine alike.
func (f Floor) Add(g Floor) Floor {
	all := slices.Concat(f.Latencies, g.Latencies)
	slices.Sort(all)
	sum := Floor{Appends: f.Appends + g.Appends, Elapsed: f.Elapsed + g.Elapsed, CPU: f.CPU + g.CPU, Latencies: all}
	if len(all) > 0 {
		sum.P50, sum.P99 = all[len(all)/2], all[len(all)*99/100]
	}
	return sum
}

// PerSec is the appends' throughput.
func (f Floor) PerSec() float64 { return float64(f.Appends) / f.Elapsed.Seconds() }

// CPUPerAppend is the process's CPU time per append.
func (f Floor) CPUPerAppend() time.Duration { return f.CPU / time.Duration(f.Appends) }

// Report reports f's metrics to b, each name prefixed with prefix (e.g.
// "floor-" beside a step's own figures).
func (f Floor) Report(b *testing.B, prefix string) {
	b.ReportMetric(f.PerSec(), prefix+"appends/s")
	b.ReportMetric(float64(f.P50.Nanoseconds())/1e3, prefix+"p50-µs")
	b.ReportMetric(float64(f.P99.Nanoseconds())/1e3, prefix+"p99-µs")
	b.ReportMetric(float64(f.CPUPerAppend().Nanoseconds())/1e3, prefix+"cpu-µs/op")
}

// MeasureFloor makes each journal append the way a step's result is written
// (bus.Append: synchronous, acknowledged under b's sync policy, a 25-byte
// entry on a subject of its own): each of writers goroutines appends each
// entries to a run of its own.
func MeasureFloor(ctx context.Context, b *bus.Bus, writers, each int) (Floor, error) {
	prefix := fmt.Sprintf("floor%d", time.Now().UnixNano())
	lat := make([][]time.Duration, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	cpu0 := ProcessCPU()
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := fmt.Sprintf("%s-%d", prefix, w)
			l := make([]time.Duration, 0, each)
			for i := range each {
				t0 := time.Now()
				if _, err := b.Append(ctx, bus.JournalSubject(run, "result", fmt.Sprint(i)), fmt.Sprint(run, "/", i), nil, []byte(`{"step":"1","value":null}`)); err != nil {
					errs[w] = err
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	f := Floor{Elapsed: time.Since(start), CPU: ProcessCPU() - cpu0}
	var all []time.Duration
	for w, l := range lat {
		if errs[w] != nil {
			return Floor{}, errs[w]
		}
		all = append(all, l...)
	}
	slices.Sort(all)
	f.Appends = len(all)
	if f.Appends == 0 {
		return Floor{}, fmt.Errorf("bustest: no appends measured")
	}
	f.P50, f.P99, f.Latencies = all[len(all)/2], all[len(all)*99/100], all
	return f, nil
}

// ProcessCPU is the user and system CPU time this process has used.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
