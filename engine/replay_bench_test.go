package engine

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/replay"
)

// BenchmarkReplay10k replays a 10,000-step journal (no step executed) and
// reports steps/s: canonical JSON of each call's arguments, journal lookup and
// result decoding.
func BenchmarkReplay10k(b *testing.B) {
	productionTelemetry()
	var execs atomic.Int64
	n := newTestNode(b, Options{Registry: testRegistry(&execs)})
	ctx := context.Background()
	r, err := n.Start(ctx, api.StartRequest{Script: testScript("def main(input):\n    s = 0\n    for i in range(10000):\n        s += test.echo({'i': i, 'sku': 'a-1'})['i']\n    return s\n")})
	if err != nil {
		b.Fatal(err)
	}
	if end, err := n.Wait(ctx, r.ID); err != nil || end.Status != api.StatusCompleted {
		b.Fatal(err, end.Error)
	}
	exp, err := n.Export(ctx, r.ID)
	if err != nil {
		b.Fatal(err)
	}
	reg := testRegistry(&execs)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		rep, err := replay.Replay(ctx, exp, replay.Options{Registry: reg})
		if err != nil || !rep.Matches || rep.Steps != 10000 {
			b.Fatal(err, rep)
		}
	}
	b.ReportMetric(float64(10000*b.N)/time.Since(start).Seconds(), "steps/s")
}

// BenchmarkAdopt1000 measures adoption of a crashed run with 1,000 completed
// steps: from adopt (read journal, load and compile the script, replay) to the
// moment its next step executes live.
func BenchmarkAdopt1000(b *testing.B) {
	productionTelemetry()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var execs, holds atomic.Int64
		held := make(chan struct{})
		reg := recoveryRegistry(&execs, &holds, held)
		dir := b.TempDir()
		n, err := NewNode(context.Background(), Options{Name: "n1", DataDir: dir, Registry: reg})
		if err != nil {
			b.Fatal(err)
		}
		src := "def main(input):\n    for i in range(1000):\n        test.echo(i)\n    test.hold()\n    test.hold()\n"
		r, err := n.Start(context.Background(), api.StartRequest{Script: testScript(src), Input: json.RawMessage("null")})
		if err != nil {
			b.Fatal(err)
		}
		<-held
		grace, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		n.Close(grace)
		cancel()
		// The next live step after adoption is test.hold again (executed anew).
		live := make(chan struct{})
		var calls atomic.Int64
		reg2 := recoveryRegistry(&execs, &calls, live)
		n2, err := NewNode(context.Background(), Options{Name: "n1", DataDir: dir, Registry: reg2, NoRecovery: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := n2.adopt(context.Background(), r.ID); err != nil {
			b.Fatal(err)
		}
		<-live
		b.StopTimer()
		grace2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
		n2.Close(grace2) // the run is held in its step: interrupt it
		cancel2()
	}
}
