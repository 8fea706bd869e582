package pagerduty_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/pagerduty"
	"github.com/droverhq/drover/starlark/builtins/pagerduty/pagerdutytest"
)

// The tests run against pagerdutytest's stand-in of the documented Events
// API v2: no real PagerDuty endpoint is reachable here.

const key = "R0UT1NGKEYdrover0000000000000042" // 32 characters, as PagerDuty's

func open(t *testing.T, cfg pagerduty.Config) (*builtins.Registry, *builtinstest.Runtime, builtins.IntegrationStatus) {
	t.Helper()
	return builtinstest.OpenIntegration(t, pagerduty.Register, &cfg)
}

func lastErr(t *testing.T, rt *builtinstest.Runtime) *builtins.StepError {
	t.Helper()
	calls := rt.Calls()
	if len(calls) == 0 || calls[len(calls)-1].Err == nil {
		t.Fatalf("no failed call: %+v", calls)
	}
	se := calls[len(calls)-1].Err
	if strings.Contains(se.Message, key) {
		t.Errorf("the routing key leaks: %s", se.Message)
	}
	return se
}

func TestTriggerAcknowledgeResolve(t *testing.T) {
	srv := pagerdutytest.NewServer(key)
	defer srv.Close()
	r, rt, st := open(t, pagerduty.Config{RoutingKey: key, URL: srv.URL})
	if st.State != builtins.StateOK {
		t.Fatalf("check: %+v", st)
	}
	for _, c := range []struct{ expr, want string }{
		{`pagerduty.trigger("checkout failing for acme", "checkout.example.com", severity="critical", details={"orders": 3, "customer": "acme"})`, `{"dedup_key": "test/1", "ok": True, "status": "success"}`},
		{`pagerduty.acknowledge("test/1")`, `{"dedup_key": "test/1", "ok": True, "status": "success"}`},
		{`pagerduty.resolve(dedup_key="test/1")`, `{"dedup_key": "test/1", "ok": True, "status": "success"}`},
		{`pagerduty.trigger("disk full", "db1", dedup_key="disk/db1")`, `{"dedup_key": "disk/db1", "ok": True, "status": "success"}`},
	} {
		v, err := rt.Eval(r, c.expr, nil)
		if err != nil || v.String() != c.want {
			t.Errorf("%s = %v, %v; want %s", c.expr, v, err, c.want)
		}
	}
	events := srv.Events()
	if len(events) != 4 {
		t.Fatalf("%d events, want 4", len(events))
	}
	want := pagerdutytest.Event{RoutingKey: key, Action: "trigger", DedupKey: "test/1", Client: "Drover", Payload: &pagerdutytest.Payload{
		Summary: "checkout failing for acme", Source: "checkout.example.com", Severity: "critical",
		CustomDetails: map[string]any{"orders": 3.0, "customer": "acme"}}}
	if !reflect.DeepEqual(events[0], want) {
		t.Errorf("trigger sent %+v (%+v)\nwant %+v (%+v)", events[0], events[0].Payload, want, want.Payload)
	}
	if e := events[1]; e.Action != "acknowledge" || e.DedupKey != "test/1" || e.Payload != nil || e.RoutingKey != key {
		t.Errorf("acknowledge sent %+v", e)
	}
	if e := events[3]; e.Payload.Severity != "error" || e.DedupKey != "disk/db1" {
		t.Errorf("trigger with defaults sent %+v (%+v)", e, e.Payload)
	}
	if srv.Alert("test/1") != "resolved" || srv.Alert("disk/db1") != "triggered" {
		t.Errorf("alerts: test/1 %s, disk/db1 %s", srv.Alert("test/1"), srv.Alert("disk/db1"))
	}

	step, _ := r.Lookup("pagerduty.trigger")
	if got, want := step.Target(rt.Env, nil), "pagerduty "+strings.TrimPrefix(srv.URL, "http://"); got != want {
		t.Errorf("target %q, want %q", got, want)
	}
	if d := step.Resources(nil); len(d) != 1 || d[0] != (builtins.Demand{Resource: pagerduty.Resource, Amount: 1}) {
		t.Errorf("demands %v", d)
	}
}

// TestRetriedTriggerPagesOnce: every attempt of a trigger step, and the
// step executed again after a crash, sends the step's idempotency key as
// the dedup_key: PagerDuty keeps one alert.
func TestRetriedTriggerPagesOnce(t *testing.T) {
	srv := pagerdutytest.NewServer(key)
	defer srv.Close()
	r, rt, _ := open(t, pagerduty.Config{RoutingKey: key, URL: srv.URL})
	step, err := r.Lookup("pagerduty.trigger")
	if err != nil {
		t.Fatal(err)
	}
	args, err := builtins.Canonical(map[string]any{"action": "trigger", "summary": "checkout down", "source": "checkout", "severity": "error"})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		ctx := builtins.WithStep(context.Background(), builtins.StepContext{Run: "run7", Step: "4", Attempt: attempt, Key: "run7/4"})
		v, err := step.Exec(ctx, rt.Env, args)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.(map[string]any)["dedup_key"]; got != "run7/4" {
			t.Errorf("attempt %d: dedup_key %v", attempt, got)
		}
	}
	events := srv.Events()
	if len(events) != 3 {
		t.Fatalf("%d events", len(events))
	}
	for _, e := range events {
		if e.DedupKey != "run7/4" {
			t.Errorf("sent dedup_key %q, want the step's key run7/4", e.DedupKey)
		}
	}
	if srv.Alert("run7/4") != "triggered" {
		t.Errorf("alert %q", srv.Alert("run7/4"))
	}
}

// TestFailures: PagerDuty refusing the event (400) is final, code
// pagerduty; 429 and 5xx are retryable; a PagerDuty that cannot be
// reached is transport, retryable.
func TestFailures(t *testing.T) {
	srv := pagerdutytest.NewServer(key)
	defer srv.Close()
	r, rt, _ := open(t, pagerduty.Config{RoutingKey: key, URL: srv.URL})
	for _, c := range []struct {
		name   string
		fail   int
		want   string
		retry  bool
		inText string
	}{
		{"rate limited", 429, pagerduty.CodeRateLimited, true, "rate limited by PagerDuty (HTTP 429)"},
		{"server error", 500, builtins.CodeTransport, true, "answered HTTP 500"},
		{"unavailable", 503, builtins.CodeTransport, true, "answered HTTP 503"},
	} {
		srv.FailNext(c.fail)
		if _, err := rt.Eval(r, `pagerduty.trigger("x", "y")`, nil); err == nil {
			t.Fatalf("%s: no error", c.name)
		}
		if se := lastErr(t, rt); se.Code != c.want || se.Retryable != c.retry || !strings.Contains(se.Message, c.inText) {
			t.Errorf("%s: %+v", c.name, se)
		}
	}

	// a routing key PagerDuty does not know: its answer, a value
	_, rt2, _ := open(t, pagerduty.Config{RoutingKey: "R0UT1NGKEYwrong000000000000000042", URL: srv.URL})
	v, err := rt2.Eval(r, `pagerduty.resolve("k")`, nil)
	if want := `{"dedup_key": "k", "error": "pagerduty.resolve k: PagerDuty refused the event (HTTP 400): invalid event: Event object is invalid: Invalid routing key", "ok": False}`; err != nil || v.String() != want {
		t.Errorf("400: %v, %v\nwant %s", v, err, want)
	}

	srv.Close() // a fresh client: none of its connections to reuse
	r, rt, _ = open(t, pagerduty.Config{RoutingKey: key, URL: srv.URL})
	if _, err := rt.Eval(r, `pagerduty.trigger("x", "y")`, nil); err == nil {
		t.Fatal("no error")
	}
	if se := lastErr(t, rt); se.Code != builtins.CodeTransport || !se.Retryable || !strings.Contains(se.Message, "connection refused") ||
		!strings.Contains(se.Message, "events API at "+strings.TrimPrefix(srv.URL, "http://")) {
		t.Errorf("unreachable: %+v", se)
	}
	if _, _, st := open(t, pagerduty.Config{RoutingKey: key, URL: srv.URL}); st.State != builtins.StateFailing || !strings.Contains(st.Error, "connection refused") || strings.Contains(st.Error, key) {
		t.Errorf("check of an unreachable PagerDuty: %+v", st)
	}
}

func TestStatesAndResources(t *testing.T) {
	r, rt, st := open(t, pagerduty.Config{})
	if st.State != builtins.StateUnconfigured {
		t.Errorf("none: %+v", st)
	}
	if _, err := rt.Eval(r, `pagerduty.trigger("x", "y")`, nil); err == nil || lastErr(t, rt).Code != builtins.CodeBadArgs {
		t.Errorf("trigger without a routing key: %v", err)
	}
	if _, _, st := open(t, pagerduty.Config{RoutingKey: key, URL: "events.pagerduty.com"}); st.State != builtins.StateFailing || !strings.Contains(st.Error, `url "events.pagerduty.com": want an http(s) URL`) {
		t.Errorf("bad url: %+v", st)
	}
	for _, c := range []struct {
		cfg  pagerduty.Config
		want int
	}{{pagerduty.Config{RoutingKey: key}, 1}, {pagerduty.Config{}, 0}} {
		inst, err := pagerduty.Integration.Open(context.Background(), &c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		decls := inst.(builtins.ResourceDeclarer).Resources()
		if len(decls) != c.want {
			t.Fatalf("declares %v", decls)
		}
		if c.want == 1 {
			spec, err := meter.ParseResource(decls[0])
			if err != nil || spec.Name != pagerduty.Resource || spec.Kind != meter.KindRate || spec.Rate != 2 || spec.Scope != meter.ScopeCluster {
				t.Errorf("declared %+v, %v; want 120/m, cluster-wide", spec, err)
			}
		}
	}
}

func TestBadCalls(t *testing.T) {
	r := builtinstest.NewRegistry(pagerduty.Register)
	long := strings.Repeat("k", 256)
	for _, c := range []struct{ src, want string }{
		{`pagerduty.trigger("", "db1")`, `pagerduty.trigger: for parameter summary: empty; say what is wrong, e.g. "checkout failing for acme"`},
		{`pagerduty.trigger("x", " ")`, `pagerduty.trigger: for parameter source: empty; name the affected system, e.g. a host name`},
		{`pagerduty.trigger("x", "db1", severity="fatal")`, `pagerduty.trigger: for parameter severity: "fatal": want one of critical, error, warning, info`},
		{`pagerduty.trigger("x", "db1", details=[1])`, `pagerduty.trigger: for parameter details: got list, want dict`},
		{`pagerduty.trigger("x", "db1", details={"f": lambda: 1})`, `pagerduty.trigger: for parameter details: builtins: value is not JSON: value["f"] is a function, which has no JSON form`},
		{`pagerduty.trigger("x", "db1", dedup_key="")`, `pagerduty.trigger: for parameter dedup_key: empty; want the key the alert was triggered with`},
		{`pagerduty.trigger("x", "db1", dedup_key=7)`, `pagerduty.trigger: for parameter dedup_key: got int, want string`},
		{`pagerduty.trigger("x", "db1", dedup_key="` + long + `")`, `pagerduty.trigger: for parameter dedup_key: 256 characters; PagerDuty takes at most 255`},
		{`pagerduty.acknowledge()`, `pagerduty.acknowledge: missing argument for dedup_key`},
		{`pagerduty.resolve("")`, `pagerduty.resolve: for parameter dedup_key: empty; want the key the alert was triggered with`},
	} {
		builtinstest.CheckBadCall(t, r, c.src, c.want)
	}
	// a summary over PagerDuty's 1024 characters is cut, not refused: a
	// page must not fail for a long error message
	srv := pagerdutytest.NewServer(key)
	defer srv.Close()
	r, rt, _ := open(t, pagerduty.Config{RoutingKey: key, URL: srv.URL})
	if _, err := rt.Eval(r, `pagerduty.trigger("é" * 2000, "db1")`, nil); err != nil {
		t.Fatal(err)
	}
	var a struct{ Summary string }
	json.Unmarshal([]byte(rt.Calls()[0].Args), &a)
	if n := len([]rune(a.Summary)); n != 1024 || !strings.HasSuffix(a.Summary, "…") {
		t.Errorf("summary of %d characters", n)
	}
}

// TestNotify: the instance is an alert.Notifier: an alert triggers with
// its dedup key, its resolution resolves it.
func TestNotify(t *testing.T) {
	srv := pagerdutytest.NewServer(key)
	defer srv.Close()
	inst, err := pagerduty.Integration.Open(context.Background(), &pagerduty.Config{RoutingKey: key, URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	n := inst.(*pagerduty.Client)
	rule := alert.Rule{Name: "db down", When: alert.WhenBreakerOpen, Notify: "pagerduty", Severity: "critical"}
	if err := n.CheckRule(rule); err != nil {
		t.Fatal(err)
	}
	a := alert.Alert{Rule: rule, Subject: "sql db", Summary: "[db down] circuit breaker for sql db open", Details: map[string]string{"target": "sql db"}, DedupKey: "drover/db down/sql db"}
	if err := n.Notify(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if srv.Alert(a.DedupKey) != "triggered" {
		t.Errorf("after trigger: %q", srv.Alert(a.DedupKey))
	}
	e := srv.Events()[0]
	if e.Payload.Severity != "critical" || e.Payload.Source != "sql db" || e.Payload.CustomDetails["target"] != "sql db" {
		t.Errorf("sent %+v", e.Payload)
	}
	a.Resolved = true
	if err := n.Notify(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if srv.Alert(a.DedupKey) != "resolved" {
		t.Errorf("after resolve: %q", srv.Alert(a.DedupKey))
	}
	for _, tt := range []struct {
		rule  alert.Rule
		field string
	}{
		{alert.Rule{Notify: "pagerduty", Severity: "sev1"}, "severity"},
		{alert.Rule{Notify: "pagerduty", Channel: "#ops"}, "channel"},
	} {
		var fe *alert.FieldError
		if err := n.CheckRule(tt.rule); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("CheckRule(%+v) = %v, want a problem with %s", tt.rule, err, tt.field)
		}
	}
}
