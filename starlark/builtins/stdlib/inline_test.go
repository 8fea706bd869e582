package stdlib

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

func TestLog(t *testing.T) {
	rt := newFake(t)
	rt.got(t, `
log.debug("starting")
log.info("charged", amount=42, customer={"id": "c1", "vip": True}, ratio=0.5)
log.warn("slow", ms=1200)
log.error("failed", error="card declined")
got = None
`, nil)
	lines := strings.Split(strings.TrimSpace(rt.logs.String()), "\n")
	want := []map[string]any{
		{"level": "debug", "message": "starting"},
		{"level": "info", "message": "charged", "amount": 42.0, "customer": map[string]any{"id": "c1", "vip": true}, "ratio": 0.5},
		{"level": "warn", "message": "slow", "ms": 1200.0},
		{"level": "error", "message": "failed", "error": "card declined"},
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(want), rt.logs.String())
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
	if calls := rt.stepCalls(); len(calls) != 0 {
		t.Errorf("log ran steps: %+v", calls)
	}
}

func TestTag(t *testing.T) {
	rt := newFake(t)
	if got := rt.got(t, `got = tag(customer="acme", attempt=3, vip=True)
tag(region="eu")`, nil); got != "None" {
		t.Fatalf("tag returned %s", got)
	}
	want := map[string]string{"customer": "acme", "attempt": "3", "vip": "true", "region": "eu"}
	if !reflect.DeepEqual(rt.tags, want) {
		t.Errorf("tags = %v, want %v", rt.tags, want)
	}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"encode sorts keys", `got = json.encode({"b": 1, "a": {"d": [1, 2.5], "c": None}})`, `"{\"a\":{\"c\":null,\"d\":[1,2.5]},\"b\":1}"`},
		{"decode", `got = json.decode('{"x": [1, true, null]}')`, `{"x": [1, True, None]}`},
		{"decode default", `got = json.decode("nope", None)`, `None`},
		{"indent", `got = json.indent('{"a":1}', indent=" ")`, `"{\n \"a\": 1\n}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newFake(t)
			if got := rt.got(t, tt.src, nil); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	r := builtins.NewRegistry()
	Register(r)
	want := []string{"emit", "http.get", "http.post", "http.request", "kv.delete", "kv.get", "kv.put", "rand.int", "sleep", "time.now", "uuid"}
	if got := r.Steps(); !reflect.DeepEqual(got, want) {
		t.Errorf("Steps() = %v, want %v", got, want)
	}
	local := map[string]bool{"time.now": true, "sleep": true, "rand.int": true, "uuid": true}
	for _, name := range want {
		s, err := r.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if s.Local != local[name] {
			t.Errorf("%s Local = %v, want %v", name, s.Local, local[name])
		}
		if s.Args == nil || s.Exec == nil || s.Doc == "" {
			t.Errorf("%s lacks Args, Exec or Doc", name)
		}
	}
	pre := r.Predeclared()
	for _, name := range []string{"http", "time", "rand", "kv", "log", "json", "emit", "tag", "sleep", "uuid"} {
		if _, ok := pre[name]; !ok {
			t.Errorf("predeclared has no %s", name)
		}
	}
	if _, err := builtins.Default.Lookup("http.get"); err != nil {
		t.Errorf("init did not register into builtins.Default: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("registering twice did not panic")
			}
		}()
		Register(r)
	}()
}

func TestNoRuntime(t *testing.T) {
	r := builtins.NewRegistry()
	Register(r)
	for _, src := range []string{`uuid()`, `log.info("x")`, `tag(a="b")`} {
		thread := &starlark.Thread{Name: "bare"}
		_, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, "bare.star", src, r.Predeclared())
		if !errors.Is(err, builtins.ErrNoRuntime) {
			t.Errorf("%s without a runtime: error %v, want ErrNoRuntime", src, err)
		}
	}
}
