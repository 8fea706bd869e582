package kv_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/kv"
)

func TestKV(t *testing.T) {
	rt := builtinstest.NewRuntime()
	globals, err := rt.Run(builtinstest.NewRegistry(kv.Register), `
kv.put("user/1", {"name": "ada", "n": 1, "tags": ["x", None], "f": 1.5})
a = kv.get("user/1")
b = kv.get("missing")
kv.put(key="flag", value=True)
kv.delete("user/1")
kv.delete("never-there")
c = kv.get("user/1")
got = (a, b, c, kv.get("flag"))
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := globals["got"].String(), `({"f": 1.5, "n": 1, "name": "ada", "tags": ["x", None]}, None, None, True)`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if keys := rt.Env.Store.Keys(); len(keys) != 1 || keys[0] != "flag" {
		t.Errorf("store keys = %v, want [flag]", keys)
	}

	rt = builtinstest.NewRuntime()
	if _, err := rt.Eval(builtinstest.NewRegistry(kv.Register), `kv.put("k", {"z": [1, {"b": 2, "a": "<&>"}], "a": None})`, nil); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := rt.Env.Store.Get(context.Background(), "k"); string(v) != `{"a":null,"z":[1,{"a":"<&>","b":2}]}` {
		t.Errorf("stored %s, want canonical JSON", v)
	}
	if c := rt.Calls()[0]; c.Name != "kv.put" || c.Local || c.Args != `{"key":"k","value":{"a":null,"z":[1,{"a":"<&>","b":2}]}}` {
		t.Errorf("call = %+v", c)
	}
}

func TestKVFailures(t *testing.T) {
	tests := []struct {
		name          string
		setup         func(*builtinstest.Env)
		src           string
		wantCode      string
		wantRetryable bool
		wantMsg       string
	}{
		{
			name:          "store down",
			setup:         func(e *builtinstest.Env) { e.Store.Fail(errors.New("nats: no responders available")) },
			src:           `kv.get("k")`,
			wantCode:      builtins.CodeTransport,
			wantRetryable: true,
			wantMsg:       `kv.get "k": nats: no responders available`,
		},
		{
			name:          "put fails",
			setup:         func(e *builtinstest.Env) { e.Store.Fail(errors.New("broken pipe")) },
			src:           `kv.put("k", 1)`,
			wantCode:      builtins.CodeTransport,
			wantRetryable: true,
			wantMsg:       `kv.put "k": broken pipe`,
		},
		{
			name:          "delete fails",
			setup:         func(e *builtinstest.Env) { e.Store.Fail(errors.New("broken pipe")) },
			src:           `kv.delete("k")`,
			wantCode:      builtins.CodeTransport,
			wantRetryable: true,
			wantMsg:       `kv.delete "k": broken pipe`,
		},
		{
			name: "value not written by kv.put",
			setup: func(e *builtinstest.Env) {
				if err := e.Store.Put(context.Background(), "k", []byte("not json")); err != nil {
					t.Fatal(err)
				}
			},
			src:      `kv.get("k")`,
			wantCode: builtins.CodeInternal,
			wantMsg:  `kv.get "k": the stored value is not JSON (was it written by something other than kv.put?)`,
		},
		{
			name:     "node without a store",
			setup:    func(e *builtinstest.Env) { e.Store = nil },
			src:      `kv.get("k")`,
			wantCode: builtins.CodeInternal,
			wantMsg:  `kv.get: node test-node has no key/value store`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := builtinstest.NewRuntime()
			tt.setup(rt.Env)
			_, err := rt.Run(builtinstest.NewRegistry(kv.Register), tt.src, nil)
			if !errors.Is(err, &builtins.StepError{Code: tt.wantCode}) {
				t.Fatalf("error = %v, want code %s", err, tt.wantCode)
			}
			var se *builtins.StepError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) carries no *builtins.StepError", err, err)
			}
			if se.Retryable != tt.wantRetryable || !strings.Contains(se.Message, tt.wantMsg) {
				t.Errorf("got %+v, want retryable=%v message %q", se, tt.wantRetryable, tt.wantMsg)
			}
		})
	}
}

// TestBadArguments checks that every bad call fails the script, before any step
// runs, with a message that names the builtin and the argument.
func TestBadArguments(t *testing.T) {
	long := strings.Repeat("k", kv.MaxKeyLen+1)
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{"kv.get empty key", `kv.get("")`, `kv.get: for parameter key: the key is empty`},
		{"kv.get space", `kv.get("a b")`, `kv.get: for parameter key: the key "a b" contains whitespace at byte 1`},
		{"kv.get tab", `kv.delete("\tx")`, `kv.delete: for parameter key: the key "\tx" contains whitespace at byte 0`},
		{"kv.get control", `kv.get("a\x01")`, `kv.get: for parameter key: the key "a\x01" contains the non-printable character U+0001 at byte 1`},
		{"kv.get too long", `kv.get("` + long + `")`, `kv.get: for parameter key: the key is 513 bytes long, over the limit of 512`},
		{"kv.get type", `kv.get(1)`, `kv.get: for parameter key: got int, want string`},
		{"kv.put missing value", `kv.put("k")`, `kv.put: missing argument for value`},
		{"kv.put not json", `kv.put("k", {1: 2})`, `kv.put: for parameter value: builtins: value is not JSON: value has a key of type int; JSON object keys must be strings`},
	}
	r := builtinstest.NewRegistry(kv.Register)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { builtinstest.CheckBadCall(t, r, tt.src, tt.wantErr) })
	}
}
