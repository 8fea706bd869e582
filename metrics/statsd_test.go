package metrics

import (
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// agent is a DogStatsD agent on a loopback UDP port: it keeps every line
// it receives.
type agent struct {
	conn net.PacketConn
	got  chan struct{} // a packet arrived

	mu    sync.Mutex
	lines []string
}

// newAgent listens on 127.0.0.1:0 until the test ends.
func newAgent(t testing.TB) *agent {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{conn: conn, got: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			a.mu.Lock()
			for l := range strings.SplitSeq(string(buf[:n]), "\n") {
				if l != "" {
					a.lines = append(a.lines, l)
				}
			}
			a.mu.Unlock()
			select {
			case a.got <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return a
}

// addr is the agent's "host:port".
func (a *agent) addr() string { return a.conn.LocalAddr().String() }

// port is the agent's port.
func (a *agent) port() string { return strconv.Itoa(a.conn.LocalAddr().(*net.UDPAddr).Port) }

// sample is one DogStatsD metric line: name:value[:value...]|type|#tags.
type sample struct {
	name   string
	values []float64
	typ    string
	tags   []string // sorted
}

// parseLine parses a DogStatsD metric line; ok is false for another kind
// of line (an event, a service check).
func parseLine(t testing.TB, line string) (s sample, ok bool) {
	t.Helper()
	fields := strings.Split(line, "|")
	nameValues, typ := fields[0], ""
	if len(fields) < 2 || strings.HasPrefix(line, "_e{") || strings.HasPrefix(line, "_sc|") {
		return s, false
	}
	typ = fields[1]
	parts := strings.Split(nameValues, ":")
	s.name, s.typ = parts[0], typ
	for _, p := range parts[1:] {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			t.Fatalf("line %q: value %q: %v", line, p, err)
		}
		s.values = append(s.values, v)
	}
	for _, f := range fields[2:] {
		if tags, ok := strings.CutPrefix(f, "#"); ok {
			s.tags = strings.Split(tags, ",")
			slices.Sort(s.tags)
		}
	}
	return s, true
}

// samples returns the metric lines received so far whose name is name.
func (a *agent) samples(t testing.TB, name string) []sample {
	a.mu.Lock()
	lines := slices.Clone(a.lines)
	a.mu.Unlock()
	var out []sample
	for _, l := range lines {
		if s, ok := parseLine(t, l); ok && s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// wait flushes m's client until cond holds on what the agent received, or
// fails t after a deadline.
func (a *agent) wait(t testing.TB, m *Metrics, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if err := m.client.Flush(); err != nil {
			t.Fatal(err)
		}
		if cond() {
			return
		}
		select {
		case <-a.got:
		case <-time.After(100 * time.Millisecond): // flush again: a datagram may have been lost
		case <-deadline:
			a.mu.Lock()
			defer a.mu.Unlock()
			t.Fatalf("timed out waiting for %s; the agent received:\n%s", what, strings.Join(a.lines, "\n"))
		}
	}
}

// total is the sum of the values of name's samples with exactly tags
// (sorted), and the number of values.
func (a *agent) total(t testing.TB, name, typ string, tags ...string) (sum float64, n int) {
	slices.Sort(tags)
	for _, s := range a.samples(t, name) {
		if s.typ == typ && slices.Equal(s.tags, tags) {
			for _, v := range s.values {
				sum += v
				n++
			}
		}
	}
	return sum, n
}

// waitTotal waits until name's samples with tags add up to want.
func (a *agent) waitTotal(t testing.TB, m *Metrics, name, typ string, want float64, tags ...string) {
	t.Helper()
	a.wait(t, m, name+" "+strings.Join(tags, ",")+" = "+strconv.FormatFloat(want, 'g', -1, 64), func() bool {
		sum, _ := a.total(t, name, typ, tags...)
		return sum == want
	})
}

// waitLast waits until the last gauge of name with tags is want.
func (a *agent) waitLast(t testing.TB, m *Metrics, name string, want float64, tags ...string) {
	t.Helper()
	slices.Sort(tags)
	a.wait(t, m, name+" "+strings.Join(tags, ",")+" at "+strconv.FormatFloat(want, 'g', -1, 64), func() bool {
		var last []float64
		for _, s := range a.samples(t, name) {
			if s.typ == "g" && slices.Equal(s.tags, tags) {
				last = s.values
			}
		}
		return len(last) > 0 && last[len(last)-1] == want
	})
}

// clearDDEnv unsets the variables with which datadog-go finds an agent
// and adds global tags, for the test.
func clearDDEnv(t testing.TB) {
	for _, v := range []string{"DD_AGENT_HOST", "DD_DOGSTATSD_PORT", "DD_DOGSTATSD_URL", "DD_ENV", "DD_SERVICE", "DD_VERSION", "DD_ENTITY_ID"} {
		t.Setenv(v, "")
		os.Unsetenv(v) // t.Setenv restores it
	}
}

// newUDP returns Metrics sending to a new agent, and the agent.
func newUDP(t *testing.T, cfg Config) (*Metrics, *agent) {
	t.Helper()
	clearDDEnv(t)
	a := newAgent(t)
	cfg.Statsd.Address = a.addr()
	m, err := New(cfg, "n1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, a
}

func TestStatsdEveryMetric(t *testing.T) {
	m, a := newUDP(t, Config{Tags: []string{"env:prod"}})
	n := []string{"env:prod", "node:n1"}
	with := func(tags ...string) []string { return append(slices.Clone(n), tags...) }

	m.StepStarted("http.get")
	m.StepStarted("http.get")
	m.StepDone("http.get", 120*time.Millisecond, "")
	m.StepDone("http.get", 3*time.Second, "timeout")
	m.PlacementWait("http.get", 250*time.Millisecond)
	m.QueueDepth(7)
	m.RunEnded("order.star", "completed")
	m.RunEnded("order.star", "completed")
	m.RunEnded("order.star", "failed")
	m.RunsInFlight(3)
	m.ResourceLevel("stripe", 42.5)
	m.BreakerState("http api.example.com", BreakerOpen)
	m.JournalAppend(2 * time.Millisecond)

	a.waitTotal(t, m, "drover.step.started", "c", 2, with("builtin:http.get")...)
	a.waitTotal(t, m, "drover.step.completed", "c", 1, with("builtin:http.get")...)
	a.waitTotal(t, m, "drover.step.failed", "c", 1, with("builtin:http.get", "code:timeout")...)
	a.waitTotal(t, m, "drover.step.duration", "d", 3.12, with("builtin:http.get")...)
	a.waitTotal(t, m, "drover.placement.wait", "h", 0.25, with("builtin:http.get")...)
	a.waitLast(t, m, "drover.queue.depth", 7, n...)
	a.waitTotal(t, m, "drover.run.ended", "c", 2, with("script:order.star", "status:completed")...)
	a.waitTotal(t, m, "drover.run.ended", "c", 1, with("script:order.star", "status:failed")...)
	a.waitLast(t, m, "drover.runs.in_flight", 3, n...)
	a.waitLast(t, m, "drover.resource.level", 42.5, with("resource:stripe")...)
	a.waitLast(t, m, "drover.breaker.state", 2, with("target:http_api.example.com")...)
	a.waitTotal(t, m, "drover.journal.append", "h", 0.002, n...)

	if _, k := a.total(t, "drover.step.duration", "d", with("builtin:http.get")...); k != 2 {
		t.Errorf("step.duration has %d values, want 2", k)
	}
}

func TestStatsdNamespace(t *testing.T) {
	m, a := newUDP(t, Config{Namespace: "acme"})
	m.RunsInFlight(1)
	a.waitLast(t, m, "acme.runs.in_flight", 1, "node:n1")
}

// TestStatsdFromEnvironment checks that, with no address configured, the
// datadog-go client finds the agent as it documents: DD_AGENT_HOST and
// DD_DOGSTATSD_PORT (or DD_DOGSTATSD_URL), with DD_ENV as a tag.
func TestStatsdFromEnvironment(t *testing.T) {
	tests := []struct {
		name string
		env  func(a *agent) map[string]string
	}{
		{"host and port", func(a *agent) map[string]string {
			return map[string]string{"DD_AGENT_HOST": "127.0.0.1", "DD_DOGSTATSD_PORT": a.port(), "DD_ENV": "staging"}
		}},
		{"url", func(a *agent) map[string]string {
			return map[string]string{"DD_DOGSTATSD_URL": "udp://" + a.addr(), "DD_ENV": "staging"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearDDEnv(t)
			a := newAgent(t)
			for k, v := range tt.env(a) {
				t.Setenv(k, v)
			}
			m, err := New(Config{}, "n1")
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.client == nil {
				t.Fatal("no statsd client with DD_AGENT_HOST set")
			}
			m.StepStarted("kv.get")
			a.waitTotal(t, m, "drover.step.started", "c", 1, "builtin:kv.get", "env:staging", "node:n1")
		})
	}
}

func TestNoStatsdWithoutAddressOrEnvironment(t *testing.T) {
	clearDDEnv(t)
	t.Setenv("DD_DOGSTATSD_PORT", "8125") // a port alone names no agent
	m, err := New(Config{}, "n1")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.client != nil {
		t.Fatal("a statsd client with no address and no DD_AGENT_HOST")
	}
	m.StepStarted("kv.get") // Prometheus only
	if got := promValue(t, m, "drover_steps_started_total", "builtin", "kv.get"); got != 1 {
		t.Errorf("drover_steps_started_total = %v, want 1", got)
	}
}

func TestStatsdBadAddress(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		env     map[string]string
		wantErr string
	}{
		{"host does not resolve", "no-such-host.invalid:8125", nil, `metrics: statsd at "no-such-host.invalid:8125": `},
		{"url of another scheme", "", map[string]string{"DD_DOGSTATSD_URL": "http://127.0.0.1:8125"},
			`metrics: statsd from DD_AGENT_HOST, DD_DOGSTATSD_PORT and DD_DOGSTATSD_URL: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearDDEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			m, err := New(Config{Statsd: StatsdConfig{Address: tt.addr}}, "n1")
			if err == nil {
				m.Close()
				t.Fatal("New succeeded")
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to start with %q", err, tt.wantErr)
			}
		})
	}
}

// TestStatsdAgentGone checks that metrics sent to an address nobody
// listens on, or whose listener went away, neither block nor fail the
// caller: the packets are lost.
func TestStatsdAgentGone(t *testing.T) {
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"udp port closed", func(t *testing.T) string {
			c, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := c.LocalAddr().String()
			c.Close()
			return addr
		}},
		{"unix socket missing", func(t *testing.T) string { return "unix://" + t.TempDir() + "/dsd.socket" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearDDEnv(t)
			m, err := New(Config{Statsd: StatsdConfig{Address: tt.addr(t)}}, "n1")
			if err != nil {
				t.Fatal(err)
			}
			flood(t, m)
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}

	t.Run("listener gone", func(t *testing.T) {
		m, a := newUDP(t, Config{})
		m.StepStarted("kv.get")
		a.waitTotal(t, m, "drover.step.started", "c", 1, "builtin:kv.get", "node:n1")
		a.conn.Close()
		flood(t, m)
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// flood sends 20,000 metrics of each kind through m, and flushes: all
// within a few seconds, however the network answers.
func flood(t *testing.T, m *Metrics) {
	t.Helper()
	start := time.Now()
	for i := range 20000 {
		m.StepStarted("kv.get")
		m.StepDone("kv.get", time.Millisecond, "")
		m.QueueDepth(i)
		m.Script(KindCount, "sent", 1, nil)
	}
	if err := m.client.Flush(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("Flush: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("sending to an absent agent took %s", took)
	}
}
