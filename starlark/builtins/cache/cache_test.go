package cache_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/cache"
)

// server is the memcached .ci/run starts; DROVER_TEST_MEMCACHE points elsewhere.
var server = builtinstest.FromEnv("DROVER_TEST_MEMCACHE", "127.0.0.1:11211")

func open(t *testing.T, cfg cache.Config) (*builtins.Registry, *builtinstest.Runtime, builtins.IntegrationStatus) {
	t.Helper()
	return builtinstest.OpenIntegration(t, cache.Register, &cfg)
}

func TestGetSetDelete(t *testing.T) {
	r, rt, st := open(t, cache.Config{Servers: []string{server}})
	if st.State != builtins.StateOK {
		t.Fatalf("the test memcached must be up (.ci/run starts it): %s", st.Error)
	}
	k := fmt.Sprintf("drover-test-%d", time.Now().UnixNano())
	for _, c := range []struct{ expr, want string }{
		{`cache.get(K)`, `None`},
		{`cache.set(K, {"b": [1, 2.5, None], "a": "x"})`, `None`},
		{`cache.get(K)`, `{"a": "x", "b": [1, 2.5, None]}`},
		{`cache.set(K, "plain", ttl="1h")`, `None`},
		{`cache.get(K)`, `"plain"`},
		{`cache.delete(K)`, `True`},
		{`cache.delete(K)`, `False`},
		{`cache.get(K)`, `None`},
	} {
		v, err := rt.Eval(r, strings.ReplaceAll(c.expr, "K", fmt.Sprintf("%q", k)), nil)
		if err != nil || v.String() != c.want {
			t.Errorf("%s = %v, %v; want %s", c.expr, v, err, c.want)
		}
	}
	if _, err := rt.Eval(r, fmt.Sprintf(`cache.set(%q, 1, ttl="1s")`, k), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := rt.Eval(r, fmt.Sprintf(`cache.get(%q)`, k), nil)
		if err == nil && v.String() == "None" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the value did not expire: %v %v", v, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

func TestErrors(t *testing.T) {
	r, rt, _ := open(t, cache.Config{Servers: []string{server}})
	for _, c := range []struct{ expr, want string }{
		{`cache.get("")`, "cache.get: for parameter key: a key is 1 to 250 bytes; this one is 0"},
		{`cache.get("a b")`, `cache.get: for parameter key: the key "a b" has a space or control character at byte 1`},
		{`cache.get("x" * 251)`, "this one is 251"},
		{`cache.set("k", 1, ttl="500ms")`, "cache.set: for parameter ttl: 500ms: memcached counts whole seconds"},
		{`cache.set("k", 1, ttl="800h")`, "cache.set: for parameter ttl: 800h0m0s: want 1s to 720h0m0s, or None"},
		{`cache.set("k", lambda: 1)`, "cache.set: for parameter value"},
	} {
		_, err := rt.Eval(r, c.expr, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.expr, err, c.want)
		}
	}
}

func TestStates(t *testing.T) {
	if _, _, st := open(t, cache.Config{}); st.State != builtins.StateUnconfigured {
		t.Errorf("no servers: %+v", st)
	}
	if _, _, st := open(t, cache.Config{Servers: []string{"127.0.0.1:1"}}); st.State != builtins.StateFailing || !strings.Contains(st.Error, "ping 127.0.0.1:1") {
		t.Errorf("down: %+v", st)
	}
	if _, _, st := open(t, cache.Config{Servers: []string{"memcached"}}); st.State != builtins.StateFailing || !strings.Contains(st.Error, `server "memcached": want host:port`) {
		t.Errorf("bad server: %+v", st)
	}
	r, rt, _ := open(t, cache.Config{Servers: []string{"127.0.0.1:1"}})
	if _, err := rt.Eval(r, `cache.get("k")`, nil); err == nil || !strings.Contains(err.Error(), "cache at 127.0.0.1:1") {
		t.Errorf("down step: %v", err)
	}
}

// TestServerErrorIsNotTransport: a value the server refuses (over its item
// size) fails with code cache, not retried, rather than as a transport
// failure that would be retried and open the breaker.
func TestServerErrorIsNotTransport(t *testing.T) {
	r, rt, _ := open(t, cache.Config{Servers: []string{server}})
	_, err := rt.Eval(r, `cache.set("drover-too-big", "x" * (2 * 1024 * 1024))`, nil)
	if err == nil || !strings.Contains(err.Error(), "SERVER_ERROR") {
		t.Fatalf("a value too large: %v", err)
	}
	calls := rt.Calls()
	if last := calls[len(calls)-1]; last.Err == nil || last.Err.Code != "cache" || last.Err.Retryable {
		t.Fatalf("error: %+v", last.Err)
	}
}
