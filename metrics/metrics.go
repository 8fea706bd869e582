// Package metrics reports a node's metrics to DogStatsD and serves them to
// Prometheus: its steps (attempts started, completed and failed, their
// durations, their wait for placement, the queue), its runs (ended by status,
// in flight), its resources, its circuit breakers, its journal appends, and
// the metrics scripts emit with metrics.count/gauge/histogram.
//
// Every metric carries the node (the tag node, the label node), and where
// it is known the script or the builtin; never a run or a customer, whose
// values are unbounded. A nil *Metrics is a working no-op, so that the engine
// calls it unconditionally.
//
// DogStatsD goes through the datadog-go client, which buffers and aggregates
// on the client side and sends from its own goroutines over UDP (or a Unix
// socket): a call never blocks on the network nor fails for it, and an agent
// that is down loses the packets, not the node's time. Prometheus reads a
// registry of the node's own (not the global one) through Handler.
//
// The metrics, with the DogStatsD names under the namespace ("drover."):
//
//	DogStatsD                  Prometheus                         tags
//	step.started        count  drover_steps_started_total         builtin
//	step.completed      count  drover_steps_completed_total       builtin
//	step.failed         count  drover_steps_failed_total          builtin, code
//	step.duration       dist.  drover_step_duration_seconds       builtin
//	placement.wait      hist.  drover_placement_wait_seconds      builtin
//	queue.depth         gauge  drover_queue_depth
//	run.ended           count  drover_runs_ended_total            script, status
//	runs.in_flight      gauge  drover_runs_in_flight
//	resource.level      gauge  drover_resource_level              resource
//	breaker.state       gauge  drover_breaker_state               target
//	journal.append      hist.  drover_journal_append_seconds
//	script.<name>       (kind) drover_script_<name>[_total]       script, the script's tags
//	script_metrics.dropped     drover_dropped_script_metrics_total reason
//
// Durations are in seconds. The step metrics count attempts, on the node
// that executes them: a step retried twice is three started.
package metrics

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of Config.
const (
	// DefaultNamespace prefixes the DogStatsD names.
	DefaultNamespace = "drover."
	// DefaultMaxScriptMetrics bounds the distinct names of script metrics
	// a node reports.
	DefaultMaxScriptMetrics = 1000
)

// Config is the node configuration file's metrics section. Its zero value
// serves Prometheus and sends to DogStatsD only where the environment
// names an agent (DD_AGENT_HOST, DD_DOGSTATSD_URL).
//
//	metrics:
//	  statsd:
//	    address: 127.0.0.1:8125   # or unix:///var/run/datadog/dsd.socket
//	  namespace: drover.
//	  tags: [env:prod]
//	  prometheus: true
//	  max_script_metrics: 1000
type Config struct {
	// Statsd is where DogStatsD metrics go.
	Statsd StatsdConfig `yaml:"statsd"`
	// Namespace prefixes every DogStatsD name (default DefaultNamespace).
	Namespace string `yaml:"namespace"`
	// Tags are added to every DogStatsD metric ("env:prod"), as are node
	// and the client's own from DD_ENV, DD_SERVICE and DD_VERSION.
	// Prometheus takes such labels from its scrape configuration instead.
	Tags []string `yaml:"tags"`
	// Prometheus serves the metrics through Handler (default true).
	Prometheus *bool `yaml:"prometheus"`
	// MaxScriptMetrics bounds the distinct names of script metrics
	// (default DefaultMaxScriptMetrics): a metric of another name is
	// dropped, and counted in script_metrics.dropped.
	MaxScriptMetrics int `yaml:"max_script_metrics"`
}

// StatsdConfig is where DogStatsD metrics go.
type StatsdConfig struct {
	// Address is "host:port" (UDP) or "unix:///path" (a Unix socket).
	// Empty, the datadog-go client reads the standard environment:
	// DD_DOGSTATSD_URL, else DD_AGENT_HOST and DD_DOGSTATSD_PORT; when
	// neither DD_DOGSTATSD_URL nor DD_AGENT_HOST is set, nothing is sent
	// to DogStatsD.
	Address string `yaml:"address"`
}

// ServesPrometheus reports whether Prometheus is on: unless set to false.
func (c Config) ServesPrometheus() bool { return c.Prometheus == nil || *c.Prometheus }

// The states BreakerState reports.
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

// Metrics is a node's metrics. Make one with New; a nil *Metrics does
// nothing. It is safe for concurrent use.
type Metrics struct {
	node   string               // sanitised as a tag value
	client *statsd.Client       // nil: no DogStatsD
	reg    *prometheus.Registry // nil: no Prometheus
	prom   *promMetrics         // nil when reg is
	steps  sync.Map             // builtin → *builtinSeries
	script scripts              // script metrics
	close  sync.Once
}

// promMetrics are the node's Prometheus collectors, labelled with the node.
type promMetrics struct {
	started, completed, failed *prometheus.CounterVec
	duration, wait             *prometheus.HistogramVec
	queue, inFlight            prometheus.Gauge
	runs                       *prometheus.CounterVec
	resources, breakers        *prometheus.GaugeVec
	journal                    prometheus.Histogram
	dropped                    *prometheus.CounterVec
}

// Histogram buckets, in seconds: steps and placement from a millisecond
// to five minutes, journal appends from 100µs to a second.
var (
	stepBuckets    = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	journalBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
)

// New returns the metrics of node as cfg says: a DogStatsD client when an
// address is configured or the environment names an agent, and a private
// Prometheus registry unless cfg.Prometheus is false. Its error is the
// client's (an address that does not resolve, a bad DD_DOGSTATSD_URL); an
// agent that does not listen is no error: its packets are lost.
func New(cfg Config, node string) (*Metrics, error) {
	m := &Metrics{node: tagValue(node)}
	m.script.max = cfg.MaxScriptMetrics
	if m.script.max <= 0 {
		m.script.max = DefaultMaxScriptMetrics
	}
	m.script.m = m
	if cfg.Statsd.Address != "" || envSet("DD_AGENT_HOST") || envSet("DD_DOGSTATSD_URL") {
		ns := cfg.Namespace
		if ns == "" {
			ns = DefaultNamespace
		}
		tags := make([]string, 0, len(cfg.Tags)+1)
		tags = append(tags, "node:"+m.node)
		tags = append(tags, cfg.Tags...)
		c, err := statsd.New(cfg.Statsd.Address, // "": the client reads DD_* itself
			statsd.WithNamespace(ns),
			statsd.WithTags(tags),
			statsd.WithExtendedClientSideAggregation(),
		)
		if err != nil && cfg.Statsd.Address == "" {
			return nil, fmt.Errorf("metrics: statsd from DD_AGENT_HOST, DD_DOGSTATSD_PORT and DD_DOGSTATSD_URL: %w", err)
		}
		if err != nil {
			return nil, fmt.Errorf("metrics: statsd at %q: %w", cfg.Statsd.Address, err)
		}
		m.client = c
	}
	if cfg.ServesPrometheus() {
		m.reg = prometheus.NewRegistry()
		m.prom = newProm(m.reg, m.node)
	}
	return m, nil
}

// envSet reports whether the environment variable name is set and not empty.
func envSet(name string) bool { return os.Getenv(name) != "" }

// newProm registers the node's collectors into reg: the process's and Go's
// (as a Prometheus client does by default), and Drover's, each labelled
// with node.
func newProm(reg *prometheus.Registry, node string) *promMetrics {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r := prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, reg)
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		r.MustRegister(v)
		return v
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		r.MustRegister(v)
		return v
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		r.MustRegister(g)
		return g
	}
	gaugeVec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		r.MustRegister(v)
		return v
	}
	journal := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "drover_journal_append_seconds", Help: "Time to append a journal entry.", Buckets: journalBuckets})
	r.MustRegister(journal)
	return &promMetrics{
		started:   counter("drover_steps_started_total", "Step attempts started on this node.", "builtin"),
		completed: counter("drover_steps_completed_total", "Step attempts that succeeded on this node.", "builtin"),
		failed:    counter("drover_steps_failed_total", "Step attempts that failed on this node, by error code.", "builtin", "code"),
		duration:  histogram("drover_step_duration_seconds", "Duration of step attempts on this node.", stepBuckets, "builtin"),
		wait:      histogram("drover_placement_wait_seconds", "Time steps waited for a node to be placed on.", stepBuckets, "builtin"),
		queue:     gauge("drover_queue_depth", "Steps waiting for placement on this node."),
		runs:      counter("drover_runs_ended_total", "Runs ended, by status.", "script", "status"),
		inFlight:  gauge("drover_runs_in_flight", "Runs this node coordinates."),
		resources: gaugeVec("drover_resource_level", "Units free of a resource (tokens, pool units).", "resource"),
		breakers:  gaugeVec("drover_breaker_state", "Circuit breaker state by target: 0 closed, 1 half-open, 2 open.", "target"),
		journal:   journal,
		dropped:   counter("drover_dropped_script_metrics_total", "Script metrics dropped, by reason.", "reason"),
	}
}

// Close flushes what the DogStatsD client holds and closes it. Later
// calls send nothing to DogStatsD.
func (m *Metrics) Close() error {
	if m == nil || m.client == nil {
		return nil
	}
	var err error
	m.close.Do(func() { err = m.client.Close() })
	return err
}

// Handler serves the node's metrics in the Prometheus text format, for
// the engine to mount at /metrics; with Prometheus off (or a nil
// *Metrics), it answers 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil || m.reg == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// builtinSeries is a builtin's DogStatsD tags and Prometheus series,
// made once: an attempt allocates nothing of its own.
type builtinSeries struct {
	tags               []string // builtin:<name>
	started, completed prometheus.Counter
	duration, wait     prometheus.Observer
	failed             sync.Map // code → *failSeries
	builtin            string   // the builtin, sanitised
}

// failSeries is a builtin's failures of one code.
type failSeries struct {
	tags    []string // builtin:<name>, code:<code>
	counter prometheus.Counter
}

// builtin returns builtin's series.
func (m *Metrics) builtin(name string) *builtinSeries {
	if s, ok := m.steps.Load(name); ok {
		return s.(*builtinSeries)
	}
	v := tagValue(name)
	s := &builtinSeries{builtin: v, tags: []string{"builtin:" + v}}
	if p := m.prom; p != nil {
		s.started = p.started.WithLabelValues(v)
		s.completed = p.completed.WithLabelValues(v)
		s.duration = p.duration.WithLabelValues(v)
		s.wait = p.wait.WithLabelValues(v)
	}
	actual, _ := m.steps.LoadOrStore(name, s)
	return actual.(*builtinSeries)
}

// failure returns the series of s's failures with code.
func (m *Metrics) failure(s *builtinSeries, code string) *failSeries {
	if f, ok := s.failed.Load(code); ok {
		return f.(*failSeries)
	}
	f := &failSeries{tags: []string{s.tags[0], "code:" + tagValue(code)}}
	if m.prom != nil {
		f.counter = m.prom.failed.WithLabelValues(s.builtin, tagValue(code))
	}
	actual, _ := s.failed.LoadOrStore(code, f)
	return actual.(*failSeries)
}

// StepStarted counts an attempt of builtin starting on this node.
func (m *Metrics) StepStarted(builtin string) {
	if m == nil {
		return
	}
	m.started(m.builtin(builtin))
}

func (m *Metrics) started(s *builtinSeries) {
	if m.client != nil {
		_ = m.client.Count("step.started", 1, s.tags, 1)
	}
	if s.started != nil {
		s.started.Inc()
	}
}

// StepDone counts an attempt of builtin that ended on this node after d:
// completed when code is "", else failed with that error code
// (builtins.StepError.Code).
func (m *Metrics) StepDone(builtin string, d time.Duration, code string) {
	if m == nil {
		return
	}
	m.done(m.builtin(builtin), d, code)
}

func (m *Metrics) done(s *builtinSeries, d time.Duration, code string) {
	if code == "" {
		if m.client != nil {
			_ = m.client.Count("step.completed", 1, s.tags, 1)
		}
		if s.completed != nil {
			s.completed.Inc()
		}
	} else {
		f := m.failure(s, code)
		if m.client != nil {
			_ = m.client.Count("step.failed", 1, f.tags, 1)
		}
		if f.counter != nil {
			f.counter.Inc()
		}
	}
	if m.client != nil {
		_ = m.client.Distribution("step.duration", d.Seconds(), s.tags, 1)
	}
	if s.duration != nil {
		s.duration.Observe(d.Seconds())
	}
}

// PlacementWait records how long a step of builtin waited for a node:
// from its call to its placement (on the coordinator).
func (m *Metrics) PlacementWait(builtin string, d time.Duration) {
	if m == nil {
		return
	}
	s := m.builtin(builtin)
	if m.client != nil {
		_ = m.client.Histogram("placement.wait", d.Seconds(), s.tags, 1)
	}
	if s.wait != nil {
		s.wait.Observe(d.Seconds())
	}
}

// QueueDepth sets the number of steps waiting for placement on this node.
func (m *Metrics) QueueDepth(n int) {
	if m == nil {
		return
	}
	if m.client != nil {
		_ = m.client.Gauge("queue.depth", float64(n), nil, 1)
	}
	if m.prom != nil {
		m.prom.queue.Set(float64(n))
	}
}

// RunEnded counts a run of script that ended with status (completed,
// failed, cancelled, blocked).
func (m *Metrics) RunEnded(script, status string) {
	if m == nil {
		return
	}
	if m.client != nil {
		_ = m.client.Count("run.ended", 1, []string{"script:" + tagValue(script), "status:" + tagValue(status)}, 1)
	}
	if m.prom != nil {
		m.prom.runs.WithLabelValues(tagValue(script), tagValue(status)).Inc()
	}
}

// RunsInFlight sets the number of runs this node coordinates.
func (m *Metrics) RunsInFlight(n int) {
	if m == nil {
		return
	}
	if m.client != nil {
		_ = m.client.Gauge("runs.in_flight", float64(n), nil, 1)
	}
	if m.prom != nil {
		m.prom.inFlight.Set(float64(n))
	}
}

// ResourceLevel sets the units free of the resource name: a rate limit's
// tokens, a pool's units.
func (m *Metrics) ResourceLevel(name string, v float64) {
	if m == nil {
		return
	}
	if m.client != nil {
		_ = m.client.Gauge("resource.level", v, []string{"resource:" + tagValue(name)}, 1)
	}
	if m.prom != nil {
		m.prom.resources.WithLabelValues(tagValue(name)).Set(v)
	}
}

// BreakerState sets the state of target's circuit breaker: BreakerClosed,
// BreakerHalfOpen or BreakerOpen. Targets come from the integrations'
// configuration ("http api.example.com", "sql db"), so they are bounded.
func (m *Metrics) BreakerState(target string, state int) {
	if m == nil {
		return
	}
	if m.client != nil {
		_ = m.client.Gauge("breaker.state", float64(state), []string{"target:" + tagValue(target)}, 1)
	}
	if m.prom != nil {
		m.prom.breakers.WithLabelValues(tagValue(target)).Set(float64(state))
	}
}

// JournalAppend records the time an append to the journal took.
func (m *Metrics) JournalAppend(d time.Duration) {
	if m == nil {
		return
	}
	if m.client != nil {
		_ = m.client.Histogram("journal.append", d.Seconds(), nil, 1)
	}
	if m.prom != nil {
		m.prom.journal.Observe(d.Seconds())
	}
}
