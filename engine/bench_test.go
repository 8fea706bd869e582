package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/starlark/builtins"
)

// benchRegistry has a no-op step, an inline bench.loop(n) that calls it n times
// through the runtime while timing each call, and bench.block() which waits
// until released (for memory per in-flight run).
func benchRegistry(lat *latencies, release chan struct{}) *builtins.Registry {
	r := builtins.NewRegistry()
	noop := &builtins.Step{Name: "bench.noop", Exec: func(context.Context, builtins.Env, json.RawMessage) (any, error) { return nil, nil }}
	r.MustRegister(noop)
	r.MustRegister(&builtins.Step{Name: "bench.block", Exec: func(ctx context.Context, _ builtins.Env, _ json.RawMessage) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}})
	r.MustRegisterInline("bench.loop", starlark.NewBuiltin("bench.loop", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var n int
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "n", &n); err != nil {
			return nil, err
		}
		rt, err := builtins.RuntimeOf(thread)
		if err != nil {
			return nil, err
		}
		samples := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if _, err := rt.CallStep(thread, noop, nil); err != nil {
				return nil, err
			}
			samples = append(samples, time.Since(t0))
		}
		lat.add(samples)
		return starlark.None, nil
	}))
	return r
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(s []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, s...)
	l.mu.Unlock()
}

// report reports the p50 and p99 and returns the p50.
func (l *latencies) report(b *testing.B) time.Duration {
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	if len(l.d) == 0 {
		return 0
	}
	q := func(p float64) time.Duration { return l.d[int(p*float64(len(l.d)-1))] }
	b.ReportMetric(float64(q(0.5).Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(q(0.99).Nanoseconds())/1e3, "p99-µs")
	return q(0.5)
}

const loopScript = "def main(input):\n    bench.loop(input)\n"

// syncPolicies are the sync policies step benchmarks run under.
var syncPolicies = []bus.SyncPolicy{bus.SyncAlways, {}}

// BenchmarkStep measures one no-op step, journaled (write-once, file
// storage), under each sync policy: co-located (executed in-process) and
// dispatched (to the node's own worker, as to another node's: directly once
// the builtin is measured short). "seq" runs the steps one after another in
// one run and reports p50/p99 per step; "64runs" runs 64 runs concurrently
// and reports steps/s. Each also measures, on the same node in the same run,
// its floor: one acknowledged journal append (floor-p50-µs), in turns with
// the steps (floorTurns of each), or 64 concurrent writers' appends
// (floor-appends/s), half before and half after the steps, so that a change
// of the machine's speed during the run weighs on both alike; and reports
// the ratio (x-floor: step p50 over the floor's, or steps/s over the floor's
// appends/s).
func BenchmarkStep(b *testing.B) {
	productionTelemetry()
	for _, policy := range syncPolicies {
		for _, dispatch := range []bool{false, true} {
			mode := map[bool]string{true: "always", false: "interval"}[policy.Always] + "/" + map[bool]string{false: "colocated", true: "dispatched"}[dispatch]
			b.Run(mode+"/seq", func(b *testing.B) {
				lat := &latencies{}
				n := newTestNode(b, Options{Registry: benchRegistry(lat, nil), AlwaysDispatch: dispatch, Sync: policy})
				var floor bustest.Floor
				runN(b, n, 1, b.N, floorTurns, func() {
					sealed(b, n)
					floor = floor.Add(measureFloor(b, n, 1, max(50, min(b.N, 2000)/floorTurns)))
				})
				p50 := lat.report(b)
				floor.Report(b, "floor-")
				b.ReportMetric(float64(p50.Nanoseconds())/float64(floor.P50.Nanoseconds()), "x-floor")
			})
			b.Run(mode+"/64runs", func(b *testing.B) {
				lat := &latencies{}
				n := newTestNode(b, Options{Registry: benchRegistry(lat, nil), AlwaysDispatch: dispatch, Sync: policy})
				// One turn: in more, each run would make fewer steps and its
				// start and end weigh more on each step. The floor is
				// measured before it and after it, in halves.
				each := max(10, min(b.N/64, 100)) / 2
				floor := measureFloor(b, n, 64, each)
				elapsed := runN(b, n, 64, b.N, 1, func() {
					sealed(b, n)
					floor = floor.Add(measureFloor(b, n, 64, each))
				})
				perSec := float64(b.N) / elapsed.Seconds()
				b.ReportMetric(perSec, "steps/s")
				lat.report(b)
				floor.Report(b, "floor-")
				b.ReportMetric(perSec/floor.PerSec(), "x-floor")
			})
		}
	}
}

// floorTurns is how many turns a step benchmark takes between steps and
// their floor.
const floorTurns = 4

// sealed waits until n has sealed the runs that ended (runs with results
// journaled by a worker are: those are on subjects of their own), so that
// the floor measured next is the journal's alone, not shared with their
// seals. It reports how long that took (sealed-ms, the last wait).
func sealed(b *testing.B, n *Node) {
	b.Helper()
	start, deadline := time.Now(), time.Now().Add(5*time.Minute)
	for n.sealer.Pending() > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d runs still not sealed after 5 minutes", n.sealer.Pending())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds()), "sealed-ms")
}

// measureFloor measures appends on n's bus from writers writers, each
// entries.
func measureFloor(b *testing.B, n *Node, writers, each int) bustest.Floor {
	b.Helper()
	f, err := bustest.MeasureFloor(context.Background(), n.bus, writers, each)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// runN makes total steps in `runs` concurrent runs, in turns turns one after
// another, and returns the time the steps took. After each turn it stops
// the benchmark's timer and calls after (nil: nothing). It reports the
// process's CPU time per step (cpu-µs/op), counted during the turns only.
func runN(b *testing.B, n *Node, runs, total, turns int, after func()) time.Duration {
	b.Helper()
	ctx := context.Background()
	// Warm up: compile the script and open the journal paths.
	r, err := n.Start(ctx, api.StartRequest{Script: testScript(loopScript), Input: json.RawMessage("10")})
	if err != nil {
		b.Fatal(err)
	}
	n.Wait(ctx, r.ID)
	var elapsed, cpu time.Duration
	per := (total + runs*turns - 1) / (runs * turns)
	b.ResetTimer()
	for range turns {
		start, cpu0 := time.Now(), bustest.ProcessCPU()
		ids := make([]string, runs)
		for i := range ids {
			r, err := n.Start(ctx, api.StartRequest{Script: testScript(loopScript), Input: json.RawMessage(fmt.Sprint(per))})
			if err != nil {
				b.Fatal(err)
			}
			ids[i] = r.ID
		}
		for _, id := range ids {
			end, err := n.Wait(ctx, id)
			if err != nil || end.Status != api.StatusCompleted {
				b.Fatalf("run %s: %v %+v", id, err, end.Error)
			}
		}
		elapsed += time.Since(start)
		cpu += bustest.ProcessCPU() - cpu0
		b.StopTimer()
		if after != nil {
			after()
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(per*runs*turns), "cpu-µs/op")
	return elapsed
}

// BenchmarkInFlightRunMemory reports the heap held by one run waiting on a step.
func BenchmarkInFlightRunMemory(b *testing.B) {
	productionTelemetry()
	release := make(chan struct{})
	n := newTestNode(b, Options{Registry: benchRegistry(&latencies{}, release)})
	ctx := context.Background()
	const runs = 500
	src := testScript("def main(input):\n    bench.block()\n    return input\n")
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ids := make([]string, runs)
		for j := range ids {
			r, err := n.Start(ctx, api.StartRequest{Script: src, Input: json.RawMessage(`{"customer":"acme"}`)})
			if err != nil {
				b.Fatal(err)
			}
			ids[j] = r.ID
		}
		deadline := time.Now().Add(30 * time.Second)
		for n.meter.Read().InFlight["bench.block"] < runs && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/runs, "B/run")
		for k := 0; k < runs; k++ {
			release <- struct{}{}
		}
		for _, id := range ids {
			n.Wait(ctx, id)
		}
	}
}
