package builtinstest

import (
	"context"
	"os"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
)

// OpenIntegration opens the integration that register adds, as a node
// does, with cfg (a pointer to its configuration): it returns a registry
// holding it, a Runtime whose Env gives its steps the instance, and its
// state after a check. The instance is closed when the test ends.
func OpenIntegration(t testing.TB, register func(*builtins.Registry), cfg any) (*builtins.Registry, *Runtime, builtins.IntegrationStatus) {
	t.Helper()
	r := builtins.NewRegistry()
	register(r)
	ins := r.Integrations()
	if len(ins) != 1 {
		t.Fatalf("builtinstest: register added %d integrations, want 1", len(ins))
	}
	name := ins[0].Name
	o := builtins.OpenIntegrations(context.Background(), r, map[string]any{name: cfg})
	t.Cleanup(func() { o.Close() })
	st := o.Check(context.Background())[0]
	rt := NewRuntime()
	rt.Env.Integrations = map[string]any{name: o.Get(name)}
	return r, rt, st
}

// FromEnv returns the environment variable name, or def when it is unset:
// where a test finds the server an integration talks to
// (DROVER_TEST_REDIS, ...), the machine's own by default.
func FromEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
