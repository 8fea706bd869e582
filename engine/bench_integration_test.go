package engine

import (
	"context"
	dbsql "database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	_ "github.com/jackc/pgx/v5/stdlib"
	goredis "github.com/redis/go-redis/v9"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
	cachebuiltin "github.com/droverhq/drover/starlark/builtins/cache"
	redisbuiltin "github.com/droverhq/drover/starlark/builtins/redis"
	sqlbuiltin "github.com/droverhq/drover/starlark/builtins/sql"
)

// BenchmarkIntegrationStep measures, in one run, a call to Redis (GET),
// memcached (get) and PostgreSQL (select 1) made by its client directly
// (raw-p50-µs), the same call as a Drover step from a script on a
// standalone node (step-p50-µs), and a co-located no-op step on the same
// node (noop-p50-µs), the three in turns, call by call; x-noop is the
// step's overhead over the raw call in no-op steps ((step - raw) / noop;
// the target is ≤ 2). For the record, no-op steps in a loop of their own
// (noop-loop-p50-µs, as BenchmarkStep measures them: warmer, so cheaper)
// and the overhead counted in those (x-noop-loop). Under each sync policy.
func BenchmarkIntegrationStep(b *testing.B) {
	productionTelemetry()
	ctx := context.Background()
	rdb := goredis.NewClient(&goredis.Options{Addr: envOr("DROVER_TEST_REDIS", "127.0.0.1:6379")})
	defer rdb.Close()
	mc := memcache.New(envOr("DROVER_TEST_MEMCACHE", "127.0.0.1:11211"))
	pg, err := dbsql.Open("pgx", envOr("DROVER_TEST_PG", "postgres://postgres@127.0.0.1:5432/test"))
	if err != nil {
		b.Fatal(err)
	}
	defer pg.Close()
	if err := rdb.Set(ctx, "drover-bench", "v", 0).Err(); err != nil {
		b.Fatal("the benchmark needs Redis: ", err)
	}
	if err := mc.Set(&memcache.Item{Key: "drover-bench", Value: []byte(`"v"`)}); err != nil {
		b.Fatal("the benchmark needs memcached: ", err)
	}
	cases := []struct {
		name, expr string
		raw        func() error
	}{
		{"redis-get", `redis.get("drover-bench")`, func() error { return rdb.Get(ctx, "drover-bench").Err() }},
		{"memcache-get", `cache.get("drover-bench")`, func() error { _, err := mc.Get("drover-bench"); return err }},
		{"postgres-select-1", `sql.query("db", "select 1")`, func() error { var one int; return pg.QueryRowContext(ctx, "select 1").Scan(&one) }},
	}
	for _, policy := range syncPolicies {
		mode := map[bool]string{true: "always", false: "interval"}[policy.Always]
		for _, c := range cases {
			b.Run(mode+"/"+c.name, func(b *testing.B) {
				lat, tight := &latencies{}, &latencies{}
				reg := benchRegistry(tight, nil)
				sqlbuiltin.Register(reg)
				redisbuiltin.Register(reg)
				cachebuiltin.Register(reg)
				raw, timed := &latencies{}, &latencies{}
				noop, _ := reg.Lookup("bench.noop")
				// bench.pair() makes the raw call, then a no-op step; bench.time(f)
				// times f(), the call as a step. Called in turns, call by call, so
				// that all three see the machine alike (a client called in a tight
				// loop of its own finds its server and its goroutines warm, which
				// a step's call between two journal appends does not).
				reg.MustRegisterInline("bench.pair", starlark.NewBuiltin("bench.pair", func(thread *starlark.Thread, _ *starlark.Builtin, _ starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
					t0 := time.Now()
					if err := c.raw(); err != nil {
						return nil, err
					}
					t1 := time.Now()
					raw.add([]time.Duration{t1.Sub(t0)})
					rt, err := builtins.RuntimeOf(thread)
					if err != nil {
						return nil, err
					}
					if _, err := rt.CallStep(thread, noop, nil); err != nil {
						return nil, err
					}
					lat.add([]time.Duration{time.Since(t1)})
					return starlark.None, nil
				}))
				reg.MustRegisterInline("bench.time", starlark.NewBuiltin("bench.time", func(thread *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
					t0 := time.Now()
					_, err := starlark.Call(thread, args[0], nil, nil)
					timed.add([]time.Duration{time.Since(t0)})
					return starlark.None, err
				}))
				n := newTestNode(b, Options{Registry: reg, Sync: policy, Integrations: map[string]any{
					"sql":   &sqlbuiltin.Config{Connections: map[string]sqlbuiltin.Connection{"db": {DSN: envOr("DROVER_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")}}},
					"redis": &redisbuiltin.Config{Addr: envOr("DROVER_TEST_REDIS", "127.0.0.1:6379")},
					"cache": &cachebuiltin.Config{Servers: []string{envOr("DROVER_TEST_MEMCACHE", "127.0.0.1:11211")}},
				}})
				per := max(b.N/4, 50)
				for range 4 {
					runBench(b, n, fmt.Sprintf("def main(input):\n    for i in range(%d):\n        bench.pair()\n        bench.time(lambda: %s)\n", per, c.expr))
					runBench(b, n, fmt.Sprintf("def main(input):\n    bench.loop(%d)\n", per))
				}
				rawP50, stepP50, noopP50 := p50(raw), p50(timed), p50(lat)
				b.ReportMetric(us(rawP50), "raw-p50-µs")
				b.ReportMetric(us(stepP50), "step-p50-µs")
				b.ReportMetric(us(noopP50), "noop-p50-µs")
				b.ReportMetric(float64(stepP50-rawP50)/float64(noopP50), "x-noop")
				b.ReportMetric(us(p50(tight)), "noop-loop-p50-µs")
				b.ReportMetric(float64(stepP50-rawP50)/float64(p50(tight)), "x-noop-loop")
			})
		}
	}
}

// runBench runs src on n to its end, failing b if it does not complete.
func runBench(b *testing.B, n *Node, src string) {
	b.Helper()
	ctx := context.Background()
	r, err := n.Start(ctx, api.StartRequest{Script: testScript(src), Input: json.RawMessage("null")})
	if err != nil {
		b.Fatal(err)
	}
	end, err := n.Wait(ctx, r.ID)
	if err != nil || end.Status != api.StatusCompleted {
		b.Fatalf("run: %v %+v", err, end.Error)
	}
}

func p50(l *latencies) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return median(l.d)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
