package engine

import (
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/metrics"
	scriptmetrics "github.com/droverhq/drover/starlark/builtins/metrics"
)

// TestMetricsReachDogStatsDAndPrometheus: a node configured with a
// DogStatsD address sends its step, run and script metrics there, tagged
// with builtin and script (never the customer), and serves them at GET
// /metrics.
func TestMetricsReachDogStatsDAndPrometheus(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var packets strings.Builder
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			packets.Write(buf[:n])
			packets.WriteByte('\n')
			mu.Unlock()
		}
	}()
	var execs atomic.Int64
	reg := logRegistry(&execs)
	scriptmetrics.Register(reg)
	n := newTestNode(t, Options{Name: "n1", Registry: reg, Metrics: metrics.Config{Statsd: metrics.StatsdConfig{Address: conn.LocalAddr().String()}}})
	end := runScript(t, n, `
def main(input):
    tag(customer="acme")
    metrics.count("orders.charged", 2, tags={"region": "eu"})
    return test.echo(1)
`, "")
	if end.Status != api.StatusCompleted {
		t.Fatalf("run: %+v", end.Error)
	}
	want := []string{"drover.step.completed:", "builtin:test.echo", "drover.run.ended:1|c", "status:completed", "drover.script.orders.charged:2|c", "region:eu", "node:n1"}
	bustest.PollUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range want {
			if !strings.Contains(packets.String(), w) {
				return false
			}
		}
		return true
	})
	mu.Lock()
	if strings.Contains(packets.String(), "acme") || strings.Contains(packets.String(), end.ID) {
		t.Errorf("a customer or run id in the metrics:\n%s", packets.String())
	}
	mu.Unlock()
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{`drover_steps_completed_total{builtin="test.echo",node="n1"} 1`, `drover_runs_ended_total{node="n1",script="t",status="completed"} 1`} {
		if !strings.Contains(string(body), w) {
			t.Errorf("GET /metrics lacks %s:\n%s", w, body)
		}
	}
}
