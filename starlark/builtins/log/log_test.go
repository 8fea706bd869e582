package log_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/log"
)

func TestLog(t *testing.T) {
	rt := builtinstest.NewRuntime()
	_, err := rt.Run(builtinstest.NewRegistry(log.Register), `
log.debug("starting")
log.info("charged", amount=42, customer={"id": "c1", "vip": True}, ratio=0.5)
log.warn("slow", ms=1200)
log.error("failed", error="card declined")
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	lines := rt.Logs()
	want := []map[string]any{
		{"level": "debug", "message": "starting"},
		{"level": "info", "message": "charged", "amount": 42.0, "customer": map[string]any{"id": "c1", "vip": true}, "ratio": 0.5},
		{"level": "warn", "message": "slow", "ms": 1200.0},
		{"level": "error", "message": "failed", "error": "card declined"},
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%q", len(lines), len(want), lines)
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON: %s", i, line)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d = %v, want %v", i, got, want[i])
		}
	}
	if calls := rt.Calls(); len(calls) != 0 {
		t.Errorf("log ran steps: %+v", calls)
	}
}

// TestBadArguments checks that every bad call fails the script, before any step
// runs, with a message that names the builtin and the argument.
func TestBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{"log no msg", `log.info()`, `log.info: missing argument for msg`},
		{"log msg type", `log.warn(1)`, `log.warn: for parameter msg: got int, want string`},
		{"log two positional", `log.error("a", "b")`, `log.error: got 2 arguments, want at most 1`},
		{"log field not json", `log.debug("m", f=len)`, `log.debug: for field f: builtins: value is not JSON: value is a builtin_function_or_method, which has no JSON form`},
		{"log reserved field", `log.info("m", level="x")`, `log.info: field level is reserved for the log line itself; choose another name`},
	}
	r := builtinstest.NewRegistry(log.Register)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { builtinstest.CheckBadCall(t, r, tt.src, tt.wantErr) })
	}
}
