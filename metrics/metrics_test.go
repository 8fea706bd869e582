package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/droverhq/drover/starlark/builtins"
)

// promMetric returns the series of the family name whose labels include
// node="n1" and the pairs of labels (name, value, ...), or nil.
func promMetric(t testing.TB, m *Metrics, name string, labels ...string) *dto.Metric {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"node": "n1"}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			if len(have) != len(want) {
				continue
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			return s
		}
	}
	return nil
}

// promValue is the value of a counter or gauge series (0 when absent), or
// the number of observations of a histogram's.
func promValue(t testing.TB, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	s := promMetric(t, m, name, labels...)
	switch {
	case s == nil:
		return 0
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	}
	t.Fatalf("%s: a series of another type", name)
	return 0
}

func TestPrometheusHandler(t *testing.T) {
	clearDDEnv(t)
	m, err := New(Config{}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	m.StepStarted("http.get")
	m.StepDone("http.get", 20*time.Millisecond, "")
	m.StepStarted("http.get")
	m.StepDone("http.get", 2*time.Second, "transport")
	m.PlacementWait("http.get", time.Second)
	m.QueueDepth(4)
	m.RunEnded("order.star", "cancelled")
	m.RunsInFlight(2)
	m.ResourceLevel("db pool", 3)
	m.BreakerState("sql db", BreakerHalfOpen)
	m.JournalAppend(time.Millisecond)
	m.Script(KindCount, "orders.charged", 2, map[string]string{"script": "order.star"})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`drover_steps_started_total{builtin="http.get",node="n1"} 2`,
		`drover_steps_completed_total{builtin="http.get",node="n1"} 1`,
		`drover_steps_failed_total{builtin="http.get",code="transport",node="n1"} 1`,
		`drover_step_duration_seconds_count{builtin="http.get",node="n1"} 2`,
		`drover_step_duration_seconds_bucket{builtin="http.get",node="n1",le="0.025"} 1`,
		`drover_placement_wait_seconds_sum{builtin="http.get",node="n1"} 1`,
		`drover_queue_depth{node="n1"} 4`,
		`drover_runs_ended_total{node="n1",script="order.star",status="cancelled"} 1`,
		`drover_runs_in_flight{node="n1"} 2`,
		`drover_resource_level{node="n1",resource="db_pool"} 3`,
		`drover_breaker_state{node="n1",target="sql_db"} 1`,
		`drover_journal_append_seconds_count{node="n1"} 1`,
		`drover_script_orders_charged_total{node="n1",script="order.star"} 2`,
		`# HELP drover_steps_started_total Step attempts started on this node.`,
		"\ngo_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

func TestPrometheusOff(t *testing.T) {
	clearDDEnv(t)
	off := false
	m, err := New(Config{Prometheus: &off}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /metrics with Prometheus off: %d, want 404", rec.Code)
	}
	m.StepStarted("kv.get") // neither backend: nothing to do, no panic
	m.Script(KindGauge, "x", 1, nil)
	if _, ok := m.Interceptor().(builtins.InterceptorBase); !ok {
		t.Errorf("Interceptor with no backend is %T, want the pass-through base", m.Interceptor())
	}
}

// TestNil checks that a nil *Metrics does nothing, whatever is called.
func TestNil(t *testing.T) {
	var m *Metrics
	m.StepStarted("kv.get")
	m.StepDone("kv.get", time.Second, "timeout")
	m.PlacementWait("kv.get", time.Second)
	m.QueueDepth(1)
	m.RunEnded("s", "completed")
	m.RunsInFlight(1)
	m.ResourceLevel("r", 1)
	m.BreakerState("t", BreakerOpen)
	m.JournalAppend(time.Second)
	m.Script(KindCount, "c", 1, map[string]string{"a": "b"})
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /metrics of nil Metrics: %d, want 404", rec.Code)
	}
	run := builtins.Chain(func(context.Context, *builtins.StepAttempt) (json.RawMessage, *builtins.StepError) {
		return json.RawMessage(`1`), nil
	}, m.Interceptor())
	if v, serr := run(context.Background(), attempt("kv.get")); serr != nil || string(v) != "1" {
		t.Errorf("attempt through a nil Metrics' interceptor = %s, %v", v, serr)
	}
}

func TestClose(t *testing.T) {
	m, a := newUDP(t, Config{})
	m.StepStarted("kv.get")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Close flushed what the client held.
	deadline := time.After(5 * time.Second)
	for {
		if sum, _ := a.total(t, "drover.step.started", "c", "builtin:kv.get", "node:n1"); sum == 1 {
			break
		}
		select {
		case <-a.got:
		case <-deadline:
			t.Fatal("Close did not send the step.started it held")
		}
	}
	m.StepStarted("kv.get") // after Close: dropped, no panic
}

// attempt returns an attempt of builtin.
func attempt(builtin string) *builtins.StepAttempt {
	return &builtins.StepAttempt{Step: &builtins.Step{Name: builtin}, Args: json.RawMessage(`{}`),
		Context: builtins.StepContext{Run: "r1", Step: "1", Attempt: 1, Key: "r1/1"}}
}

func TestInterceptor(t *testing.T) {
	m, a := newUDP(t, Config{})
	fail := true
	run := builtins.Chain(func(context.Context, *builtins.StepAttempt) (json.RawMessage, *builtins.StepError) {
		if fail {
			return nil, builtins.Retryable(builtins.CodeTransport, "connection refused")
		}
		return json.RawMessage(`"ok"`), nil
	}, m.Interceptor())

	if _, serr := run(context.Background(), attempt("http.get")); serr == nil || serr.Code != builtins.CodeTransport {
		t.Fatalf("failing attempt returned %v, want its transport error", serr)
	}
	fail = false
	if v, serr := run(context.Background(), attempt("http.get")); serr != nil || string(v) != `"ok"` {
		t.Fatalf("succeeding attempt returned %s, %v", v, serr)
	}

	tags := []string{"builtin:http.get", "node:n1"}
	a.waitTotal(t, m, "drover.step.started", "c", 2, tags...)
	a.waitTotal(t, m, "drover.step.completed", "c", 1, tags...)
	a.waitTotal(t, m, "drover.step.failed", "c", 1, append(tags, "code:transport")...)
	a.wait(t, m, "two step.duration values", func() bool {
		_, n := a.total(t, "drover.step.duration", "d", tags...)
		return n == 2
	})

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"drover_steps_started_total", []string{"builtin", "http.get"}, 2},
		{"drover_steps_completed_total", []string{"builtin", "http.get"}, 1},
		{"drover_steps_failed_total", []string{"builtin", "http.get", "code", "transport"}, 1},
		{"drover_step_duration_seconds", []string{"builtin", "http.get"}, 2},
	} {
		if got := promValue(t, m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// TestInterceptorRefusal checks that an attempt refused further down the
// chain with an error without a code counts as internal.
func TestInterceptorRefusal(t *testing.T) {
	clearDDEnv(t)
	m, err := New(Config{}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	run := builtins.Chain(func(context.Context, *builtins.StepAttempt) (json.RawMessage, *builtins.StepError) {
		return nil, &builtins.StepError{Message: "no code"}
	}, m.Interceptor())
	run(context.Background(), attempt("kv.get"))
	if got := promValue(t, m, "drover_steps_failed_total", "builtin", "kv.get", "code", "internal"); got != 1 {
		t.Errorf("failed{code=internal} = %v, want 1", got)
	}
}

// BenchmarkInterceptor measures an attempt through the metrics interceptor
// (DogStatsD to a loopback agent, and Prometheus) against a bare chain, in
// the same run:
//
//	go test -run '^$' -bench Interceptor -benchmem ./metrics/
func BenchmarkInterceptor(b *testing.B) {
	clearDDEnv(b)
	a := newAgent(b)
	result := json.RawMessage(`1`)
	final := func(context.Context, *builtins.StepAttempt) (json.RawMessage, *builtins.StepError) {
		return result, nil
	}
	off := false
	for _, bc := range []struct {
		name string
		cfg  *Config // nil: no interceptor
	}{
		{"bare", nil},
		{"statsd+prometheus", &Config{Statsd: StatsdConfig{Address: a.addr()}}},
		{"statsd", &Config{Statsd: StatsdConfig{Address: a.addr()}, Prometheus: &off}},
		{"prometheus", &Config{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			run := builtins.Chain(final)
			if bc.cfg != nil {
				m, err := New(*bc.cfg, "n1")
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				run = builtins.Chain(final, m.Interceptor())
			}
			ctx, at := context.Background(), attempt("http.get")
			b.ReportAllocs()
			for b.Loop() {
				run(ctx, at)
			}
		})
	}
}
