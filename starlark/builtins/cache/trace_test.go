package cache_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/cache"
	"github.com/droverhq/drover/telemetry/telemetrytest"
)

// TestSpans: each command is a client span with the database conventions'
// attributes, its key a "?" and its value left out; with several servers,
// server.address is the one that holds the key; a server that cannot be
// reached fails the span.
func TestSpans(t *testing.T) {
	r, rt, st := open(t, cache.Config{Servers: []string{server}})
	if st.State != builtins.StateOK {
		t.Fatalf("the test memcached must be up (.ci/run starts it): %s", st.Error)
	}
	rec := telemetrytest.Record(t)
	k := fmt.Sprintf("drover-test-key-%d", time.Now().UnixNano())
	const value = "value-51d0"
	for _, c := range []struct{ expr, name string }{
		{fmt.Sprintf(`cache.set(%q, %q)`, k, value), "set"},
		{fmt.Sprintf(`cache.get(%q)`, k), "get"},
		{fmt.Sprintf(`cache.delete(%q)`, k), "delete"},
	} {
		rec.Reset()
		if _, err := rt.Eval(r, c.expr, nil); err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		s := telemetrytest.Find(t, rec, c.name)
		a := telemetrytest.Attrs(s)
		host, port, _ := strings.Cut(server, ":")
		for attr, want := range map[string]string{"db.system.name": "memcached", "db.system": "memcached", "db.operation.name": c.name,
			"db.query.text": c.name + " ?", "server.address": host, "server.port": port} {
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

	r, rt, _ = open(t, cache.Config{Servers: []string{"127.0.0.1:1", "127.0.0.2:1"}, Timeout: 200 * time.Millisecond})
	rec.Reset()
	if _, err := rt.Eval(r, `cache.get("k")`, nil); err == nil {
		t.Fatal("a get from servers that are down succeeded")
	}
	s := telemetrytest.Find(t, rec, "get")
	if a := telemetrytest.Attrs(s); s.Status().Code != codes.Error || a["error.type"] != builtins.CodeTransport || !strings.HasPrefix(a["server.address"], "127.0.0.") || a["server.port"] != "1" {
		t.Errorf("servers down: status %v, attributes %v", s.Status(), s.Attributes())
	}
}
