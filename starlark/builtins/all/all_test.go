package all_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/all"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

func TestRegister(t *testing.T) {
	r := builtins.NewRegistry()
	all.Register(r)
	want := []string{"amqp.publish", "cache.delete", "cache.get", "cache.set", "consul.get", "consul.put", "consul.service", "emit", "http.get", "http.post", "http.request", "kv.delete", "kv.get", "kv.put", "pagerduty.acknowledge", "pagerduty.resolve", "pagerduty.trigger", "rand.int", "redis.delete", "redis.get", "redis.hget", "redis.hgetall", "redis.hset", "redis.incr", "redis.publish", "redis.set", "slack.post", "sleep", "sql.exec", "sql.query", "sql.tx", "time.now", "uuid"}
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
	for _, name := range []string{"http", "time", "rand", "kv", "log", "json", "emit", "tag", "sleep", "uuid", "sql", "redis", "cache", "amqp", "consul", "metrics", "slack", "pagerduty"} {
		if _, ok := pre[name]; !ok {
			t.Errorf("predeclared has no %s", name)
		}
	}
	for _, name := range want {
		if _, err := builtins.Default.Lookup(name); err != nil {
			t.Errorf("init did not register %s into builtins.Default: %v", name, err)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("registering twice did not panic")
			}
		}()
		all.Register(r)
	}()
}

func TestNoRuntime(t *testing.T) {
	r := builtins.NewRegistry()
	all.Register(r)
	for _, src := range []string{`uuid()`, `log.info("x")`, `tag(a="b")`} {
		thread := &starlark.Thread{Name: "bare"}
		_, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, "bare.star", src, r.Predeclared())
		if !errors.Is(err, builtins.ErrNoRuntime) {
			t.Errorf("%s without a runtime: error %v, want ErrNoRuntime", src, err)
		}
	}
}
