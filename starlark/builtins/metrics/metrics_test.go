package metrics_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/metrics"
)

// metric is one call a recorder received.
type metric struct {
	Kind, Name string
	Value      float64
	Tags       map[string]string
}

// recorder is a runtime that takes metrics, as the engine's does for a
// live run; it runs no steps.
type recorder struct {
	mu      sync.Mutex
	metrics []metric
	threads []*starlark.Thread
}

var (
	_ builtins.Runtime = (*recorder)(nil)
	_ metrics.Recorder = (*recorder)(nil)
)

func (r *recorder) CallStep(*starlark.Thread, *builtins.Step, any) (json.RawMessage, error) {
	return nil, errors.New("recorder runs no steps")
}
func (r *recorder) Tag(*starlark.Thread, map[string]string) error { return nil }
func (r *recorder) Logger(*starlark.Thread) *zerolog.Logger       { l := zerolog.Nop(); return &l }

func (r *recorder) RecordMetric(thread *starlark.Thread, kind, name string, value float64, tags map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics = append(r.metrics, metric{kind, name, value, tags})
	r.threads = append(r.threads, thread)
}

// run executes src with the metrics module on a thread carrying rt (none
// when rt is nil).
func run(t *testing.T, rt builtins.Runtime, src string) error {
	t.Helper()
	thread := &starlark.Thread{Name: "test"}
	if rt != nil {
		builtins.SetRuntime(thread, rt)
	}
	r := builtinstest.NewRegistry(metrics.Register)
	_, err := starlark.ExecFileOptions(builtins.Dialect, thread, "test.star", src, r.Predeclared())
	return err
}

func TestRecorded(t *testing.T) {
	rec := &recorder{}
	err := run(t, rec, `
metrics.count("orders.charged")
metrics.count("orders.items", 3, tags={"plan": "gold", "vip": True, "shard": 7})
metrics.count("orders.items", value=2.0)
metrics.gauge("cart.size", 4.5)
metrics.gauge("queue.len", -2, tags={})
metrics.histogram("charge.amount", 12.25, {"currency": "eur"})
metrics.histogram(name="latency_ms", value=1200, tags=None)
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []metric{
		{"count", "orders.charged", 1, nil},
		{"count", "orders.items", 3, map[string]string{"plan": "gold", "vip": "true", "shard": "7"}},
		{"count", "orders.items", 2, nil},
		{"gauge", "cart.size", 4.5, nil},
		{"gauge", "queue.len", -2, nil},
		{"histogram", "charge.amount", 12.25, map[string]string{"currency": "eur"}},
		{"histogram", "latency_ms", 1200, nil},
	}
	if !reflect.DeepEqual(rec.metrics, want) {
		t.Errorf("recorded\n%+v\nwant\n%+v", rec.metrics, want)
	}
	for i, th := range rec.threads {
		if th == nil || th.Name != "test" {
			t.Errorf("metric %d recorded with thread %v, want the script's", i, th)
		}
	}
}

// TestNotARecorder checks that a runtime that takes no metrics (a replay's,
// builtinstest's) makes the calls no-ops, after the same checks.
func TestNotARecorder(t *testing.T) {
	rt := builtinstest.NewRuntime()
	r := builtinstest.NewRegistry(metrics.Register)
	v, err := rt.Eval(r, `[metrics.count("a"), metrics.gauge("b", 1), metrics.histogram("c", 2.5, tags={"k": "v"})]`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.String(); got != "[None, None, None]" {
		t.Errorf("metrics.* returned %s, want None each", got)
	}
	if len(rt.Calls()) > 0 || len(rt.Logs()) > 0 || len(rt.Tags()) > 0 {
		t.Errorf("metrics.* ran steps, logged or tagged: %v %v %v", rt.Calls(), rt.Logs(), rt.Tags())
	}
}

func TestNoRuntime(t *testing.T) {
	err := run(t, nil, `metrics.count("a")`)
	if err == nil || !strings.Contains(err.Error(), "metrics.count: "+builtins.ErrNoRuntime.Error()) {
		t.Errorf("metrics.count on a thread without runtime: %v, want %v", err, builtins.ErrNoRuntime)
	}
}

// TestBadArguments checks that every bad call fails the script at its line,
// with a message naming the builtin and the argument, and records nothing.
func TestBadArguments(t *testing.T) {
	long := strings.Repeat("a", metrics.MaxNameLen+1)
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{"no name", `metrics.count()`, `metrics.count: missing argument for name`},
		{"gauge no value", `metrics.gauge("g")`, `metrics.gauge: missing argument for value`},
		{"histogram no value", `metrics.histogram("h")`, `metrics.histogram: missing argument for value`},
		{"name type", `metrics.count(1)`, `metrics.count: for parameter name: got int, want string`},
		{"name upper", `metrics.count("Orders")`, `metrics.count: for parameter name: "Orders" is not a metric name; use lower-case letters, digits, _ and ., starting with a letter (e.g. "orders.charged")`},
		{"name dash", `metrics.gauge("a-b", 1)`, `metrics.gauge: for parameter name: "a-b" is not a metric name; use lower-case letters, digits, _ and ., starting with a letter (e.g. "orders.charged")`},
		{"name digit first", `metrics.count("2xx")`, `metrics.count: for parameter name: "2xx" is not a metric name; use lower-case letters, digits, _ and ., starting with a letter (e.g. "orders.charged")`},
		{"name empty", `metrics.count("")`, `metrics.count: for parameter name: "" is not a metric name; use lower-case letters, digits, _ and ., starting with a letter (e.g. "orders.charged")`},
		{"name long", `metrics.count("` + long + `")`, `metrics.count: for parameter name: the name is 201 bytes long, over the limit of 200`},
		{"value string", `metrics.gauge("g", "1")`, `metrics.gauge: for parameter value: got string, want int or float`},
		{"value bool", `metrics.histogram("h", True)`, `metrics.histogram: for parameter value: got bool, want int or float`},
		{"value none", `metrics.gauge("g", None)`, `metrics.gauge: for parameter value: got NoneType, want int or float`},
		{"value nan", `metrics.gauge("g", float("nan"))`, `metrics.gauge: for parameter value: nan is not a finite number`},
		{"value inf", `metrics.histogram("h", float("-inf"))`, `metrics.histogram: for parameter value: -inf is not a finite number`},
		{"value huge int", `metrics.gauge("g", int("1" + "0" * 400))`, `metrics.gauge: for parameter value: the int is too large to be a metric value`},
		{"count negative", `metrics.count("c", -1)`, `metrics.count: for parameter value: -1 is negative; a count only goes up (use metrics.gauge for a level)`},
		{"count fraction", `metrics.count("c", 1.5)`, `metrics.count: for parameter value: 1.5 is not a whole number; a count adds whole units (use metrics.histogram for a measure)`},
		{"tags type", `metrics.count("c", tags=["a"])`, `metrics.count: for parameter tags: got list, want dict`},
		{"tags too many", `metrics.count("c", tags={"t%d" % i: "v" for i in range(11)})`, `metrics.count: for parameter tags: 11 tags, over the limit of 10`},
		{"tag key type", `metrics.count("c", tags={1: "v"})`, `metrics.count: for parameter tags: got a key of type int, want string`},
		{"tag key upper", `metrics.count("c", tags={"Plan": "v"})`, `metrics.count: for parameter tags: "Plan" is not a tag name; use lower-case letters, digits and _, starting with a letter`},
		{"tag key dot", `metrics.count("c", tags={"a.b": "v"})`, `metrics.count: for parameter tags: "a.b" is not a tag name; use lower-case letters, digits and _, starting with a letter`},
		{"tag key long", `metrics.count("c", tags={"` + strings.Repeat("k", 65) + `": "v"})`, `metrics.count: for parameter tags: tag name ` + strings.Repeat("k", 65) + ` is 65 bytes long, over the limit of 64`},
		{"tag node", `metrics.gauge("g", 1, tags={"node": "n2"})`, `metrics.gauge: for parameter tags: tag node is set by the node; choose another name`},
		{"tag script", `metrics.gauge("g", 1, tags={"script": "x"})`, `metrics.gauge: for parameter tags: tag script is set by the node; choose another name`},
		{"tag value float", `metrics.count("c", tags={"a": 1.5})`, `metrics.count: for parameter tags: for tag a: got float, want string, int or bool`},
		{"tag value none", `metrics.count("c", tags={"a": None})`, `metrics.count: for parameter tags: for tag a: got NoneType, want string, int or bool`},
		{"tag value long", `metrics.count("c", tags={"a": "x" * 201})`, `metrics.count: for parameter tags: for tag a: the value is 201 bytes long, over the limit of 200`},
		{"unknown keyword", `metrics.count("c", tag={})`, `metrics.count: unexpected keyword argument "tag" (did you mean tags?)`},
		{"too many", `metrics.gauge("g", 1, {}, 2)`, `metrics.gauge: got 4 arguments, want at most 3`},
	}
	r := builtinstest.NewRegistry(metrics.Register)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			builtinstest.CheckBadCall(t, r, tt.src, tt.wantErr)
			rec := &recorder{}
			if err := run(t, rec, tt.src); err == nil {
				t.Errorf("%s succeeded with a recorder", tt.src)
			}
			if len(rec.metrics) > 0 {
				t.Errorf("%s recorded %v before failing", tt.src, rec.metrics)
			}
		})
	}
}
