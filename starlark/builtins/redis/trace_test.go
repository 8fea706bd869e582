package redis_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/redis"
	"github.com/droverhq/drover/telemetry/telemetrytest"
)

// TestSpans: each command is a client span with the database conventions'
// attributes: the command with "?" for its arguments, never a key or a
// value; a failing command fails its span.
func TestSpans(t *testing.T) {
	r, rt, st := open(t, redis.Config{Addr: addr, DB: 0})
	if st.State != builtins.StateOK {
		t.Fatalf("the test Redis must be up: %s", st.Error)
	}
	rec := telemetrytest.Record(t)
	k := fmt.Sprintf("drover-test-key-%d", time.Now().UnixNano())
	const value = "value-7c2a"
	t.Cleanup(func() { rt.Eval(r, fmt.Sprintf(`redis.delete(%q, %q)`, k, k+"h"), nil) })
	for _, c := range []struct{ expr, name, text string }{
		{`redis.set(K, V)`, "SET", "SET ? ?"},
		{`redis.set(K, V, ttl="1500ms")`, "SET", "SET ? ? PX ?"},
		{`redis.set(K, V, ttl="1h")`, "SET", "SET ? ? EX ?"},
		{`redis.get(K)`, "GET", "GET ?"},
		{`redis.hset(K + "h", "f", V)`, "HSET", "HSET ? ? ?"},
		{`redis.delete(K, K + "h")`, "DEL", "DEL ? ?"},
	} {
		rec.Reset()
		expr := strings.NewReplacer("K", fmt.Sprintf("%q", k), "V", fmt.Sprintf("%q", value)).Replace(c.expr)
		if _, err := rt.Eval(r, expr, nil); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		s := telemetrytest.Find(t, rec, c.name)
		a := telemetrytest.Attrs(s)
		host, port, _ := strings.Cut(addr, ":")
		for attr, want := range map[string]string{"db.system.name": "redis", "db.system": "redis", "db.namespace": "0", "db.operation.name": c.name,
			"db.query.text": c.text, "server.address": host, "server.port": port} {
			if a[attr] != want {
				t.Errorf("%s: %s = %q, want %q", c.expr, attr, a[attr], want)
			}
		}
		for name, v := range a {
			if strings.Contains(v, k) || strings.Contains(v, value) {
				t.Errorf("%s: %s = %q: a key or a value", c.expr, name, v)
			}
		}
		if s.SpanKind() != trace.SpanKindClient || s.Status().Code == codes.Error {
			t.Errorf("%s: kind %s, status %v", c.expr, s.SpanKind(), s.Status())
		}
	}
	rec.Reset()
	rt.Eval(r, fmt.Sprintf(`redis.hset(%q, "f", "v")`, k+"h"), nil)
	if _, err := rt.Eval(r, fmt.Sprintf(`redis.get(%q)`, k+"h"), nil); err == nil {
		t.Fatal("GET of a hash succeeded")
	}
	if s := telemetrytest.Find(t, rec, "GET"); s.Status().Code != codes.Error || telemetrytest.Attrs(s)["error.type"] != "redis" || !strings.Contains(s.Status().Description, "WRONGTYPE") {
		t.Errorf("failing command: status %v, attributes %v", s.Status(), s.Attributes())
	}
}
