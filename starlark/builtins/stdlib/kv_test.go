package stdlib

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
)

func TestKV(t *testing.T) {
	rt := newFake(t)
	got := rt.got(t, `
kv.put("user/1", {"name": "ada", "n": 1, "tags": ["x", None], "f": 1.5})
a = kv.get("user/1")
b = kv.get("missing")
kv.put(key="flag", value=True)
kv.delete("user/1")
kv.delete("never-there")
c = kv.get("user/1")
got = (a, b, c, kv.get("flag"))
`, nil)
	if want := `({"f": 1.5, "n": 1, "name": "ada", "tags": ["x", None]}, None, None, True)`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if keys := rt.env.kv.keys(); len(keys) != 1 || keys[0] != "flag" {
		t.Errorf("store keys = %v, want [flag]", keys)
	}

	rt = newFake(t)
	rt.got(t, `kv.put("k", {"z": [1, {"b": 2, "a": "<&>"}], "a": None}); got = None`, nil)
	if v, _, _ := rt.env.kv.Get(context.Background(), "k"); string(v) != `{"a":null,"z":[1,{"a":"<&>","b":2}]}` {
		t.Errorf("stored %s, want canonical JSON", v)
	}
	if c := rt.stepCalls()[0]; c.name != "kv.put" || c.local || c.args != `{"key":"k","value":{"a":null,"z":[1,{"a":"<&>","b":2}]}}` {
		t.Errorf("call = %+v", c)
	}
}

func TestKVFailures(t *testing.T) {
	tests := []struct {
		name          string
		setup         func(*memKV)
		src           string
		wantCode      string
		wantRetryable bool
		wantMsg       string
	}{
		{
			name:          "store down",
			setup:         func(m *memKV) { m.err = errors.New("nats: no responders available") },
			src:           `kv.get("k")`,
			wantCode:      builtins.CodeTransport,
			wantRetryable: true,
			wantMsg:       `kv.get "k": nats: no responders available`,
		},
		{
			name:          "put fails",
			setup:         func(m *memKV) { m.err = errors.New("broken pipe") },
			src:           `kv.put("k", 1)`,
			wantCode:      builtins.CodeTransport,
			wantRetryable: true,
			wantMsg:       `kv.put "k": broken pipe`,
		},
		{
			name:     "value not written by kv.put",
			setup:    func(m *memKV) { m.data["k"] = []byte("not json") },
			src:      `kv.get("k")`,
			wantCode: builtins.CodeInternal,
			wantMsg:  `kv.get "k": the stored value is not JSON (was it written by something other than kv.put?)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newFake(t)
			tt.setup(rt.env.kv)
			_, err := rt.run(t, tt.src, nil)
			if !errors.Is(err, &builtins.StepError{Code: tt.wantCode}) {
				t.Fatalf("error = %v, want code %s", err, tt.wantCode)
			}
			se := stepErr(t, err)
			if se.Retryable != tt.wantRetryable || !strings.Contains(se.Message, tt.wantMsg) {
				t.Errorf("got %+v, want retryable=%v message %q", se, tt.wantRetryable, tt.wantMsg)
			}
		})
	}
}
