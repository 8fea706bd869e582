package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
)

// BenchmarkLogsFollow measures a live tail by attribute on a 3-node
// cluster (interval sync policy): 64 runs on n1, each of its own customer,
// log as fast as they can, while a follower on n3 tails one customer's
// lines (the API under `ctl logs --attr customer=c0 --follow`). It reports
// the delay from a line's time (when it was written) to the follower's
// receipt, p50 and p99 (the target: p99 ≤ 100 ms), the share of that
// customer's lines received (the target: 100 %), and the lines of other
// customers received (the target: 0). Its floor, in the same run: a core
// NATS message from n1 to n3 every millisecond under the same load
// (floor-p50-ms, floor-p99-ms; x-floor is p99 over the floor's p99). b.N is
// the lines logged in all.
func BenchmarkLogsFollow(b *testing.B) {
	var execs atomic.Int64
	nodes := startCluster3(b, func(int) Options { return Options{Registry: logRegistry(&execs), Sync: bus.SyncPolicy{}} })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const runs = 64
	per := max(b.N/runs, 10)
	var mu sync.Mutex
	var delays []time.Duration
	var mine, others atomic.Int64
	var dropped atomic.Int64
	followed := make(chan error, 1)
	go func() {
		followed <- nodes[2].Logs(ctx, api.LogQuery{Attrs: map[string]string{"customer": "c0"}, Follow: true}, func(l api.LogLine) bool {
			now := time.Now()
			if l.Ready() {
				return true
			}
			if l.Dropped > 0 {
				dropped.Add(int64(l.Dropped))
				return true
			}
			var line struct {
				Time    time.Time         `json:"time"`
				Attrs   map[string]string `json:"attrs"`
				Message string            `json:"message"`
			}
			json.Unmarshal(l.Line, &line)
			if line.Attrs["customer"] != "c0" {
				others.Add(1)
				return true
			}
			if line.Message == "line" {
				mine.Add(1)
				mu.Lock()
				delays = append(delays, now.Sub(line.Time))
				mu.Unlock()
			}
			return true
		})
	}()
	src := "def main(input):\n    tag(customer = input[\"c\"])\n    for i in range(input[\"n\"]):\n        log.info(\"line\", i = i)\n"
	// The tail is live once a first run's lines reach it.
	for mine.Load() == 0 {
		r, err := nodes[0].Start(ctx, api.StartRequest{Script: testScript(src), Input: json.RawMessage(`{"c":"c0","n":1}`)})
		if err != nil {
			b.Fatal(err)
		}
		nodes[0].Wait(ctx, r.ID)
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	mine.Store(0)
	mu.Lock()
	delays = nil
	mu.Unlock()
	// The floor: a core message published on n1 and received on n3 under
	// the same load, every millisecond while the runs log.
	var floor []time.Duration
	unsub, err := nodes[2].bus.Subscribe("bench.probe", func(m bus.Msg) {
		var sent time.Time
		if sent.UnmarshalBinary(m.Data) == nil {
			mu.Lock()
			floor = append(floor, time.Since(sent))
			mu.Unlock()
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer unsub()
	probing := make(chan struct{})
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-probing:
				return
			case <-t.C:
				data, _ := time.Now().MarshalBinary()
				nodes[0].bus.Publish("bench.probe", nil, data)
			}
		}
	}()
	b.ResetTimer()
	ids := make([]string, runs)
	for i := range ids {
		r, err := nodes[0].Start(ctx, api.StartRequest{Script: testScript(src), Input: json.RawMessage(fmt.Sprintf(`{"c":"c%d","n":%d}`, i, per))})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	for _, id := range ids {
		if end, err := nodes[0].Wait(ctx, id); err != nil || end.Status != api.StatusCompleted {
			b.Fatalf("run %s: %v %+v", id, err, end.Error)
		}
	}
	b.StopTimer()
	close(probing)
	<-probed
	deadline := time.Now().Add(30 * time.Second)
	for mine.Load()+dropped.Load() < int64(per) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	cancel()
	if err := <-followed; err != nil {
		b.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	sort.Slice(floor, func(i, j int) bool { return floor[i] < floor[j] })
	if len(delays) > 0 && len(floor) > 0 {
		p99, floor99 := delays[len(delays)*99/100], floor[len(floor)*99/100]
		b.ReportMetric(float64(delays[len(delays)/2].Microseconds())/1e3, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1e3, "p99-ms")
		b.ReportMetric(float64(floor[len(floor)/2].Microseconds())/1e3, "floor-p50-ms")
		b.ReportMetric(float64(floor99.Microseconds())/1e3, "floor-p99-ms")
		b.ReportMetric(float64(p99)/float64(floor99), "x-floor")
	}
	b.ReportMetric(100*float64(mine.Load())/float64(per), "%-of-c0")
	b.ReportMetric(float64(others.Load()), "others")
	b.ReportMetric(float64(dropped.Load()), "dropped")
	b.ReportMetric(float64(per*runs)/b.Elapsed().Seconds(), "lines/s")
}
