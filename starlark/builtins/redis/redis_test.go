package redis_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/redis"
)

// addr is the Redis this machine runs; DROVER_TEST_REDIS points elsewhere.
var addr = builtinstest.FromEnv("DROVER_TEST_REDIS", "127.0.0.1:6379")

func open(t *testing.T, cfg redis.Config) (*builtins.Registry, *builtinstest.Runtime, builtins.IntegrationStatus) {
	t.Helper()
	return builtinstest.OpenIntegration(t, redis.Register, &cfg)
}

func TestCommands(t *testing.T) {
	r, rt, st := open(t, redis.Config{Addr: addr})
	if st.State != builtins.StateOK {
		t.Fatalf("the test Redis must be up: %s", st.Error)
	}
	k := fmt.Sprintf("drover-test-%d", time.Now().UnixNano())
	t.Cleanup(func() { rt.Eval(r, fmt.Sprintf(`redis.delete(%q, %q, %q)`, k, k+":n", k+":h"), nil) })
	for _, c := range []struct{ expr, want string }{
		{`redis.get(K)`, `None`},
		{`redis.set(K, "v1")`, `None`},
		{`redis.get(K)`, `"v1"`},
		{`redis.set(K, 42, ttl="1h")`, `None`},
		{`redis.get(K)`, `"42"`},
		{`redis.incr(K + ":n")`, `1`},
		{`redis.incr(K + ":n", by=41)`, `42`},
		{`redis.hset(K + ":h", "a", "x")`, `1`},
		{`redis.hset(K + ":h", "a", "y")`, `0`},
		{`redis.hget(K + ":h", "a")`, `"y"`},
		{`redis.hget(K + ":h", "b")`, `None`},
		{`redis.hgetall(K + ":h")`, `{"a": "y"}`},
		{`redis.publish(K + ":chan", "hi")`, `0`},
		{`redis.delete(K, K + ":n", K + ":none")`, `2`},
	} {
		v, err := rt.Eval(r, strings.ReplaceAll(c.expr, "K", fmt.Sprintf("%q", k)), nil)
		if err != nil || v.String() != c.want {
			t.Errorf("%s = %v, %v; want %s", c.expr, v, err, c.want)
		}
	}
	v, err := rt.Eval(r, fmt.Sprintf(`redis.set(%q, "x", ttl="50ms")`, k), nil)
	if err != nil || v.String() != "None" {
		t.Fatal(v, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := rt.Eval(r, fmt.Sprintf(`redis.get(%q)`, k), nil)
		if err == nil && v.String() == "None" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key did not expire: %v %v", v, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func TestErrors(t *testing.T) {
	r, rt, _ := open(t, redis.Config{Addr: addr})
	k := fmt.Sprintf("drover-test-%d", time.Now().UnixNano())
	t.Cleanup(func() { rt.Eval(r, fmt.Sprintf(`redis.delete(%q)`, k), nil) })
	rt.Eval(r, fmt.Sprintf(`redis.hset(%q, "f", "v")`, k), nil)
	for _, c := range []struct{ expr, want string }{
		{fmt.Sprintf(`redis.get(%q)`, k), "redis at " + addr + ": WRONGTYPE"},
		{`redis.set("k", {"a": 1})`, "redis.set: for parameter value: got dict, want a string or a number (json.encode other values)"},
		{`redis.get("")`, "redis.get: for parameter key: empty key"},
		{`redis.set("k", "v", ttl="-1s")`, "ttl"},
		{`redis.delete()`, "redis.delete: for parameter key: give one key or more"},
		{`redis.incr("k", by="x")`, "redis.incr: for parameter by"},
	} {
		_, err := rt.Eval(r, c.expr, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.expr, err, c.want)
		}
	}
}

// TestStates: no address is unconfigured; a server that does not answer is
// failing, saying where; a bad address is refused at open; a step on a node
// without a server says so.
func TestStates(t *testing.T) {
	if _, _, st := open(t, redis.Config{}); st.State != builtins.StateUnconfigured || !strings.Contains(st.Error, "no addr") {
		t.Errorf("no addr: %+v", st)
	}
	if _, _, st := open(t, redis.Config{Addr: "127.0.0.1:1", Password: "pw-redis-77aa"}); st.State != builtins.StateFailing || !strings.Contains(st.Error, "ping 127.0.0.1:1") || strings.Contains(st.Error, "pw-redis-77aa") {
		t.Errorf("down: %+v", st)
	}
	if _, _, st := open(t, redis.Config{Addr: "localhost"}); st.State != builtins.StateFailing || !strings.Contains(st.Error, `addr "localhost": want host:port`) {
		t.Errorf("bad addr: %+v", st)
	}
	r, rt, _ := open(t, redis.Config{})
	if _, err := rt.Eval(r, `redis.get("k")`, nil); err == nil || !strings.Contains(err.Error(), "has no redis server configured") {
		t.Errorf("unconfigured step: %v", err)
	}
	r, rt, _ = open(t, redis.Config{Addr: "127.0.0.1:1"})
	if _, err := rt.Eval(r, `redis.get("k")`, nil); err == nil || !strings.Contains(err.Error(), "redis at 127.0.0.1:1") {
		t.Errorf("down step: %v", err)
	}
}
