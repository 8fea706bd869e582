package metrics_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/droverhq/drover/metrics"
)

// A node makes its metrics from the configuration file's metrics section,
// adds the interceptor to its attempt chain, serves Prometheus at /metrics
// and reports its runs, queue and journal as they happen.
func Example() {
	m, err := metrics.New(metrics.Config{}, "n1") // Prometheus; DogStatsD where DD_AGENT_HOST says
	if err != nil {
		panic(err)
	}
	defer m.Close()
	_ = m.Interceptor() // engine.Options.Interceptors
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())

	m.RunsInFlight(1)
	m.JournalAppend(800 * time.Microsecond)
	m.RunEnded("order.star", "completed")

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for l := range strings.SplitSeq(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "drover_runs_") {
			fmt.Println(l)
		}
	}
	// Output:
	// drover_runs_ended_total{node="n1",script="order.star",status="completed"} 1
	// drover_runs_in_flight{node="n1"} 1
}
