package engine

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/metrics"
	logbuiltin "github.com/droverhq/drover/starlark/builtins/log"
	"github.com/droverhq/drover/telemetry"
)

// BenchmarkObservability measures what logging, metrics and tracing cost a
// co-located step's throughput with 64 runs, under the interval sync
// policy: in the same run, in turns, a node with all three off (spans
// carrying ids only, as with no exporter; no DogStatsD, no Prometheus; run
// lines at error only, nowhere but the bus) and a node with all three on
// (spans recorded by the SDK and batched to an exporter; DogStatsD to a UDP
// listener that reads every packet, and Prometheus; run lines at info, also
// to the node's output). x-off is on's steps/s over off's (the target is
// ≥ 0.9). "script-logs" makes each step's run write a log line too, for
// the record.
func BenchmarkObservability(b *testing.B) {
	agent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer agent.Close()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, _, err := agent.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	tracing := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(telemetry.IDGenerator{}), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer tracing.Shutdown(context.Background())
	prev := otel.GetTracerProvider()
	defer otel.SetTracerProvider(prev)
	idsOnly := func() {
		telemetryOnce.Do(func() {}) // productionTelemetry must not undo this
		telemetry.Setup(context.Background(), "drover-bench", "n1")
	}
	off, on := false, true
	for _, v := range []struct {
		name   string
		script string
	}{
		{"steps", loopScript},
		{"script-logs", "def main(input):\n    for i in range(input):\n        bench.noop()\n        log.info(\"step\", i=i)\n"},
	} {
		b.Run(v.name, func(b *testing.B) {
			lat := &latencies{}
			reg := benchRegistry(lat, nil)
			logbuiltin.Register(reg)
			nodes := map[bool]*Node{
				false: newTestNode(b, Options{Name: "off", Registry: reg, Sync: bus.SyncPolicy{}, RunLogLevel: "error",
					Metrics: metrics.Config{Prometheus: &off}}),
				true: newTestNode(b, Options{Name: "on", Registry: reg, Sync: bus.SyncPolicy{}, LogOutput: io.Discard,
					Metrics: metrics.Config{Prometheus: &on, Statsd: metrics.StatsdConfig{Address: agent.LocalAddr().String()}}}),
			}
			var elapsed [2]time.Duration
			turns := 8
			per := max(b.N/turns, 640)
			for t := range turns {
				order := []bool{false, true}
				if t%2 == 1 {
					order = []bool{true, false} // ABBA: neither always goes first
				}
				for _, state := range order {
					i := map[bool]int{false: 0, true: 1}[state]
					if state {
						otel.SetTracerProvider(tracing)
					} else {
						idsOnly()
					}
					elapsed[i] += runScriptN(b, nodes[state], v.script, 64, per)
				}
			}
			offRate := float64(per*turns) / elapsed[0].Seconds()
			onRate := float64(per*turns) / elapsed[1].Seconds()
			b.ReportMetric(offRate, "off-steps/s")
			b.ReportMetric(onRate, "on-steps/s")
			b.ReportMetric(onRate/offRate, "x-off")
		})
	}
}

// runScriptN makes total steps with src (main(input) makes input steps) in
// runs concurrent runs on n, and returns how long they took.
func runScriptN(b *testing.B, n *Node, src string, runs, total int) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	ids := make([]string, runs)
	for i := range ids {
		r, err := n.Start(ctx, api.StartRequest{Script: testScript(src), Input: json.RawMessage(strconv.Itoa(total / runs))})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	for _, id := range ids {
		if end, err := n.Wait(ctx, id); err != nil || end.Status != api.StatusCompleted {
			b.Fatalf("run %s: %v %+v", id, err, end.Error)
		}
	}
	return time.Since(start)
}
