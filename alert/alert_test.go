package alert_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/pagerduty"
	"github.com/droverhq/drover/starlark/builtins/pagerduty/pagerdutytest"
	"github.com/droverhq/drover/starlark/builtins/slack"
	"github.com/droverhq/drover/starlark/builtins/slack/slacktest"
)

// The tests use fake notifiers, and the real slack and pagerduty
// integrations against local stand-ins of Slack's and PagerDuty's
// documented APIs: no real endpoint is reachable here.

// fake is a Notifier that records what it is sent. Its fail function, if
// set, answers each attempt instead of nil; its gate, if set, holds each
// attempt until it is closed or the attempt's context ends.
type fake struct {
	mu       sync.Mutex
	got      []alert.Alert
	attempts int
	fail     func(attempt int) error
	gate     chan struct{}
}

func (f *fake) Notify(ctx context.Context, a alert.Alert) error {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fail != nil {
		if err := f.fail(f.attempts); err != nil {
			return err
		}
	}
	f.got = append(f.got, a)
	return nil
}

func (f *fake) alerts() []alert.Alert {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]alert.Alert(nil), f.got...)
}

// waitFor polls cond until it holds, or fails t after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeClock is a clock the test moves; timers fire as it passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.done
		t.done = true
		return was
	}
}

// Advance moves the clock by d and runs the timers that fall due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// newAlerts returns alerts of cfg sending to notifiers, on clock c (nil: a
// fresh one), without waits between attempts; closed when the test ends.
func newAlerts(t *testing.T, cfg alert.Config, notifiers map[string]alert.Notifier, c *fakeClock, log zerolog.Logger) *alert.Alerts {
	t.Helper()
	if c == nil {
		c = newClock()
	}
	a, err := alert.NewForTest(cfg, notifiers, log, c, []time.Duration{0, 0}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// summaries returns the alerts' summaries, each marked when resolved.
func summaries(as []alert.Alert) []string {
	var out []string
	for _, a := range as {
		s := a.Summary
		if a.Resolved {
			s = "RESOLVED " + s
		}
		out = append(out, s)
	}
	return out
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("alerts\n got %q\nwant %q", got, want)
	}
}

func TestRunFailed(t *testing.T) {
	f := &fake{}
	a := newAlerts(t, alert.Config{
		{Name: "checkout failed", When: alert.WhenRunFailed, Script: "checkout", Notify: "fake"},
		{Name: "billing", When: alert.WhenRunFailed, Script: "billing-*", Notify: "fake"},
	}, map[string]alert.Notifier{"fake": f}, nil, zerolog.Nop())

	a.RunEnded("checkout", "r1", api.StatusFailed, "division by zero\n  checkout.star:3:7: in main")
	a.RunEnded("checkout", "r2", api.StatusFailed, "again") // holds: no second alert
	a.RunEnded("orders", "r3", api.StatusFailed, "no rule") // filtered out
	a.RunEnded("billing-eu", "r4", api.StatusFailed, "x")
	a.RunEnded("checkout", "r5", api.StatusCancelled, "")
	a.RunEnded("checkout", "r6", api.StatusCompleted, "")       // resolves
	a.RunEnded("checkout", "r7", api.StatusCompleted, "")       // nothing to resolve
	a.RunEnded("checkout", "r8", api.StatusFailed, "once more") // fires again
	a.Close()                                                   // sends what is queued
	got := f.alerts()
	equal(t, summaries(got), []string{
		"[checkout failed] script checkout: run r1 failed: division by zero",
		"[billing] script billing-eu: run r4 failed: x",
		"RESOLVED [checkout failed] resolved: script checkout: run r6 completed (1 more runs failed meanwhile)",
		"[checkout failed] script checkout: run r8 failed: once more",
	})
	if len(got) != 4 {
		return
	}
	first := got[0]
	if first.DedupKey != "drover/checkout failed/checkout" || first.Subject != "checkout" || first.Rule.Name != "checkout failed" ||
		first.Details["run"] != "r1" || first.Details["error"] != "division by zero\n  checkout.star:3:7: in main" || first.Details["rule"] != "checkout failed" {
		t.Errorf("first alert %+v", first)
	}
	if got[2].DedupKey != first.DedupKey || got[2].Details["failed_runs"] != "2" {
		t.Errorf("resolution %+v", got[2])
	}
	if s := a.Stats(); s.Sent != 4 || s.Failed != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestBreakerOpen: a breaker_open rule fires once the breaker has been
// open for `for`, not if it closes first, once however often the opening
// is reported, and resolves when it closes.
func TestBreakerOpen(t *testing.T) {
	f := &fake{}
	c := newClock()
	a := newAlerts(t, alert.Config{
		{Name: "db down", When: alert.WhenBreakerOpen, Target: "sql *", For: time.Minute, Notify: "fake"},
		{Name: "any breaker", When: alert.WhenBreakerOpen, Notify: "fake"}, // for: 0, every target
	}, map[string]alert.Notifier{"fake": f}, c, zerolog.Nop())

	t0 := c.Now()
	a.BreakerChanged("sql db", true, t0)
	waitFor(t, "any breaker", func() bool { return len(f.alerts()) == 1 }) // at once
	c.Advance(59 * time.Second)
	a.BreakerChanged("sql db", false, time.Time{}) // closed before its minute: db down never fires
	waitFor(t, "any breaker resolved", func() bool { return len(f.alerts()) == 2 })

	a.BreakerChanged("sql db", true, c.Now())
	c.Advance(30 * time.Second)
	a.BreakerChanged("sql db", true, c.Now()) // reported again, still open: keeps its start
	c.Advance(30 * time.Second)
	waitFor(t, "db down", func() bool { return len(f.alerts()) == 4 })
	c.Advance(time.Hour)
	a.BreakerChanged("http api.example.com", true, c.Now().Add(-2*time.Minute)) // only any breaker
	a.BreakerChanged("sql db", false, time.Time{})
	a.Close()
	equal(t, summaries(f.alerts()), []string{
		"[any breaker] circuit breaker for sql db open since 12:00:00 UTC (0s)",
		"RESOLVED [any breaker] resolved: circuit breaker for sql db closed after 59s",
		"[any breaker] circuit breaker for sql db open since 12:00:59 UTC (0s)",
		"[db down] circuit breaker for sql db open since 12:00:59 UTC (1m0s)",
		"[any breaker] circuit breaker for http api.example.com open since 12:59:59 UTC (2m0s)",
		"RESOLVED [db down] resolved: circuit breaker for sql db closed after 1h1m0s",
		"RESOLVED [any breaker] resolved: circuit breaker for sql db closed after 1h1m0s",
	})
}

// TestBreakerOpenSince: a breaker reported open since long enough fires at
// once.
func TestBreakerOpenSince(t *testing.T) {
	f := &fake{}
	c := newClock()
	a := newAlerts(t, alert.Config{{Name: "db down", When: alert.WhenBreakerOpen, For: time.Minute, Notify: "fake"}},
		map[string]alert.Notifier{"fake": f}, c, zerolog.Nop())
	a.BreakerChanged("sql db", true, c.Now().Add(-90*time.Second))
	a.Close()
	equal(t, summaries(f.alerts()), []string{"[db down] circuit breaker for sql db open since 11:58:30 UTC (1m30s)"})
}

func TestNodeLost(t *testing.T) {
	f := &fake{}
	c := newClock()
	a := newAlerts(t, alert.Config{{Name: "nodes", When: alert.WhenNodeLost, Notify: "fake"}}, map[string]alert.Notifier{"fake": f}, c, zerolog.Nop())
	a.NodeLost("n2")
	a.NodeLost("n2")
	a.NodeReturned("n3")
	c.Advance(3 * time.Minute)
	a.NodeReturned("n2")
	a.NodeLost("n2")
	a.Close()
	equal(t, summaries(f.alerts()), []string{
		"[nodes] node n2 lost",
		"RESOLVED [nodes] resolved: node n2 is back after 3m0s",
		"[nodes] node n2 lost",
	})
	if got := f.alerts()[0]; got.DedupKey != "drover/nodes/n2" || got.Details["node"] != "n2" || got.Details["when"] != "node_lost" {
		t.Errorf("alert %+v", got)
	}
}

// TestRealNotifiers: each kind of rule reaches Slack and PagerDuty through
// the integrations' instances (stand-ins of both services).
func TestRealNotifiers(t *testing.T) {
	const token, key = "xoxb-alert-test-token-1", "R0UT1NGKEYalerts000000000000042"
	sl := slacktest.NewServer(token)
	defer sl.Close()
	pd := pagerdutytest.NewServer(key)
	defer pd.Close()
	si, err := slack.Integration.Open(context.Background(), &slack.Config{Token: token, APIURL: sl.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	pi, err := pagerduty.Integration.Open(context.Background(), &pagerduty.Config{RoutingKey: key, URL: pd.URL})
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	a := newAlerts(t, alert.Config{
		{Name: "checkout failed", When: alert.WhenRunFailed, Script: "checkout", Notify: "slack", Channel: "#ops"},
		{Name: "checkout paged", When: alert.WhenRunFailed, Script: "checkout", Notify: "pagerduty"},
		{Name: "db down", When: alert.WhenBreakerOpen, Target: "sql db", For: time.Minute, Notify: "pagerduty", Severity: "critical"},
		{Name: "nodes", When: alert.WhenNodeLost, Notify: "slack", Channel: "#general"},
	}, map[string]alert.Notifier{"slack": si.(*slack.Client), "pagerduty": pi.(*pagerduty.Client)}, c, zerolog.Nop())

	a.RunEnded("checkout", "r1", api.StatusFailed, "payment service: 502")
	a.BreakerChanged("sql db", true, c.Now())
	c.Advance(time.Minute)
	a.NodeLost("n2")
	waitFor(t, "two pages and two posts", func() bool { return len(pd.Events()) == 2 && len(sl.Messages()) == 2 })
	if pd.Alert("drover/checkout paged/checkout") != "triggered" || pd.Alert("drover/db down/sql db") != "triggered" {
		t.Errorf("PagerDuty alerts: %+v", pd.Events())
	}
	for _, e := range pd.Events() {
		if e.DedupKey == "drover/db down/sql db" && (e.Payload.Severity != "critical" || e.Payload.Source != "sql db") {
			t.Errorf("db down paged %+v", e.Payload)
		}
	}
	msgs := sl.Messages()
	channels := map[string]string{}
	for _, m := range msgs {
		channels[m.Channel] = m.Text
	}
	if !strings.Contains(channels["#ops"], "run r1 failed: payment service: 502") || !strings.Contains(channels["#general"], "node n2 lost") {
		t.Errorf("slack messages %+v", msgs)
	}

	a.RunEnded("checkout", "r2", api.StatusCompleted, "")
	a.BreakerChanged("sql db", false, time.Time{})
	a.NodeReturned("n2")
	waitFor(t, "resolutions", func() bool { return len(pd.Events()) == 4 && len(sl.Messages()) == 4 })
	if pd.Alert("drover/checkout paged/checkout") != "resolved" || pd.Alert("drover/db down/sql db") != "resolved" {
		t.Errorf("PagerDuty alerts after resolution: %+v", pd.Events())
	}
	waitFor(t, "eight sent", func() bool { return a.Stats().Sent == 8 }) // counted once answered
	if s := a.Stats(); s.Failed != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestBadRules: New rejects each bad rule, naming it and the setting.
func TestBadRules(t *testing.T) {
	configured, err := slack.Integration.Open(context.Background(), &slack.Config{Token: "xoxb-bad-rules-0000"})
	if err != nil {
		t.Fatal(err)
	}
	unconfigured, _ := slack.Integration.Open(context.Background(), &slack.Config{})
	pd, _ := pagerduty.Integration.Open(context.Background(), &pagerduty.Config{RoutingKey: "R0UT1NGKEY"})
	notifiers := map[string]alert.Notifier{"slack": configured.(*slack.Client), "pagerduty": pd.(*pagerduty.Client), "fake": &fake{}}
	ok := alert.Rule{Name: "ok", When: alert.WhenNodeLost, Notify: "fake"}
	for _, tt := range []struct {
		name    string
		rule    alert.Rule
		field   string
		wantErr string
	}{
		{"no name", alert.Rule{When: alert.WhenNodeLost, Notify: "fake"}, "name", `alert: alerts[1]: name: missing; give each rule a name`},
		{"same name", alert.Rule{Name: "ok", When: alert.WhenNodeLost, Notify: "fake"}, "name", `alert: alerts[1] ("ok"): name: alerts[0] has the same name`},
		{"no when", alert.Rule{Name: "x", Notify: "fake"}, "when", `alerts[1] ("x"): when: missing; want one of run_failed, breaker_open, node_lost`},
		{"bad when", alert.Rule{Name: "x", When: "run_fail", Notify: "fake"}, "when", `when: "run_fail" is not an event; want one of run_failed, breaker_open, node_lost`},
		{"script on breaker", alert.Rule{Name: "x", When: alert.WhenBreakerOpen, Script: "a", Notify: "fake"}, "script", `script: filters run_failed rules only, not breaker_open`},
		{"bad script glob", alert.Rule{Name: "x", When: alert.WhenRunFailed, Script: "[", Notify: "fake"}, "script", `script: "[" is not a glob`},
		{"target on node", alert.Rule{Name: "x", When: alert.WhenNodeLost, Target: "sql db", Notify: "fake"}, "target", `target: filters breaker_open rules only, not node_lost`},
		{"for on run", alert.Rule{Name: "x", When: alert.WhenRunFailed, For: time.Minute, Notify: "fake"}, "for", `for: applies to breaker_open rules only, not run_failed`},
		{"negative for", alert.Rule{Name: "x", When: alert.WhenBreakerOpen, For: -time.Second, Notify: "fake"}, "for", `for: -1s is negative`},
		{"no notify", alert.Rule{Name: "x", When: alert.WhenNodeLost}, "notify", `notify: missing; want one of fake, pagerduty, slack`},
		{"unknown notify", alert.Rule{Name: "x", When: alert.WhenNodeLost, Notify: "email"}, "notify", `notify: "email" is not configured on this node (it has: fake, pagerduty, slack)`},
		{"slack without channel", alert.Rule{Name: "x", When: alert.WhenNodeLost, Notify: "slack"}, "channel", `alerts[1] ("x"): channel: missing; slack posts with a token need one`},
		{"pagerduty severity", alert.Rule{Name: "x", When: alert.WhenNodeLost, Notify: "pagerduty", Severity: "sev1"}, "severity", `severity: "sev1": want one of critical, error, warning, info`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := alert.New(alert.Config{ok, tt.rule}, notifiers, zerolog.Nop())
			var re *alert.RuleError
			if !errors.Is(err, alert.ErrBadRule) || !errors.As(err, &re) || re.Index != 1 || re.Field != tt.field || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v (%+v), want one about alerts[1]'s %s: %s", err, re, tt.field, tt.wantErr)
			}
		})
	}
	_, err = alert.New(alert.Config{{Name: "x", When: alert.WhenNodeLost, Notify: "slack", Channel: "#ops"}},
		map[string]alert.Notifier{"slack": unconfigured.(*slack.Client)}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), `alerts[0] ("x"): notify: slack has no token or webhook_url on this node`) {
		t.Errorf("unconfigured slack: %v", err)
	}
	_, err = alert.New(alert.Config{{Name: "a"}, {Name: "b", When: "x", Notify: "fake"}}, notifiers, zerolog.Nop())
	if err == nil || strings.Count(err.Error(), "alert: alerts[") != 3 {
		t.Errorf("every problem reported: %v", err)
	}
	if a, err := alert.New(nil, nil, zerolog.Nop()); err != nil || a.Close() != nil {
		t.Errorf("no rules: %v", err)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFailures: a notification that fails is tried again unless its error
// is final, then logged and counted.
func TestFailures(t *testing.T) {
	flaky := &fake{fail: func(n int) error {
		if n < 3 {
			return builtins.Retryable(builtins.CodeTransport, "slack.post to #ops: connection refused")
		}
		return nil
	}}
	refused := &fake{fail: func(int) error {
		return builtins.Errorf("slack", "slack.post to #gone: Slack answered channel_not_found")
	}}
	down := &fake{fail: func(int) error { return errors.New("dial tcp: connection refused") }}
	var logs syncBuffer
	a := newAlerts(t, alert.Config{
		{Name: "flaky", When: alert.WhenNodeLost, Notify: "flaky"},
		{Name: "refused", When: alert.WhenNodeLost, Notify: "refused"},
		{Name: "down", When: alert.WhenNodeLost, Notify: "down"},
	}, map[string]alert.Notifier{"flaky": flaky, "refused": refused, "down": down}, nil, zerolog.New(&logs))
	a.NodeLost("n2")
	a.Close()
	if len(flaky.alerts()) != 1 || flaky.attempts != 3 {
		t.Errorf("flaky: %d sent in %d attempts, want 1 in 3", len(flaky.alerts()), flaky.attempts)
	}
	if refused.attempts != 1 {
		t.Errorf("a final error was tried %d times", refused.attempts)
	}
	if down.attempts != 3 {
		t.Errorf("a plain error was tried %d times, want 3", down.attempts)
	}
	if s := a.Stats(); s.Sent != 1 || s.Failed != 2 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
	for _, want := range []string{`"rule":"refused"`, `channel_not_found`, `"message":"alert notification failed"`, `"attempts":3`, `trying again`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

// TestSlowNotifierNeverBlocks: events return at once while a notifier
// hangs; past the queue's bound notifications are dropped and counted,
// and Close gives up on a notifier that never answers.
func TestSlowNotifierNeverBlocks(t *testing.T) {
	slow := &fake{gate: make(chan struct{})}
	a, err := alert.NewForTest(alert.Config{{Name: "runs", When: alert.WhenRunFailed, Notify: "slow"}},
		map[string]alert.Notifier{"slow": slow}, zerolog.Nop(), newClock(), nil, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	const n = alert.QueueSize + 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			a.RunEnded("script-"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "r", api.StatusFailed, "boom")
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunEnded blocked on a slow notifier")
	}
	if s := a.Stats(); s.Dropped < n-alert.QueueSize-1 {
		t.Errorf("stats %+v: want about %d dropped", s, n-alert.QueueSize)
	}
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a notifier that never answers")
	}
	if s := a.Stats(); s.Sent != 0 || s.Sent+s.Failed+s.Dropped != n {
		t.Errorf("stats %+v: every notification accounted for, none sent", s)
	}
	a.RunEnded("late", "r", api.StatusFailed, "after close") // ignored
}

// TestNilAlerts: a node without alert rules may keep a nil *Alerts.
func TestNilAlerts(t *testing.T) {
	var a *alert.Alerts
	a.RunEnded("s", "r", api.StatusFailed, "x")
	a.BreakerChanged("t", true, time.Now())
	a.NodeLost("n")
	a.NodeReturned("n")
	if a.Stats() != (alert.Stats{}) || a.Close() != nil {
		t.Error("nil Alerts")
	}
}

func TestDedupKey(t *testing.T) {
	if got := alert.DedupKey("db down", "sql db"); got != "drover/db down/sql db" {
		t.Errorf("DedupKey = %q", got)
	}
	long := alert.DedupKey("r", strings.Repeat("x", 300))
	if len(long) > 255 || !strings.HasPrefix(long, "drover/") || long != alert.DedupKey("r", strings.Repeat("x", 300)) {
		t.Errorf("long DedupKey = %q", long)
	}
}

// TestConfigFromYAML: the node configuration's alerts section decodes into
// a Config, durations written as Go's.
func TestConfigFromYAML(t *testing.T) {
	var file struct {
		Alerts alert.Config `yaml:"alerts"`
	}
	src := `
alerts:
  - name: checkout failed
    when: run_failed
    script: checkout
    notify: slack
    channel: "#ops"
  - name: database down
    when: breaker_open
    for: 1m30s
    target: "sql db"
    notify: pagerduty
    severity: critical
`
	if err := yaml.Unmarshal([]byte(src), &file); err != nil {
		t.Fatal(err)
	}
	want := alert.Config{
		{Name: "checkout failed", When: alert.WhenRunFailed, Script: "checkout", Notify: "slack", Channel: "#ops"},
		{Name: "database down", When: alert.WhenBreakerOpen, For: 90 * time.Second, Target: "sql db", Notify: "pagerduty", Severity: "critical"},
	}
	if !reflect.DeepEqual(file.Alerts, want) {
		t.Errorf("decoded %+v\nwant %+v", file.Alerts, want)
	}
	if _, err := alert.New(file.Alerts, map[string]alert.Notifier{"slack": &fake{}, "pagerduty": &fake{}}, zerolog.Nop()); err != nil {
		t.Error(err)
	}
}
