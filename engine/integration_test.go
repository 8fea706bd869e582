package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/breaker"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/replay"
	"github.com/droverhq/drover/starlark/builtins"
	sqlbuiltin "github.com/droverhq/drover/starlark/builtins/sql"
)

// vaultConfig is a test integration's configuration, with a secret.
type vaultConfig struct {
	Addr  string
	Token string `secret:"true"`
}

// vault is its instance: a check that fails, and a step whose error quotes
// the token, as a careless driver's might.
type vault struct{ cfg vaultConfig }

func (v *vault) Check(context.Context) error {
	return errors.New("dial " + v.cfg.Addr + " with token " + v.cfg.Token + ": connection refused")
}

// syncBuffer is a log sink safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestIntegrationSecretNeverLeaves: a node opens an integration from its
// configuration, checks it at start and shows its failing state (which
// address, why) in its heartbeat; its steps reach the instance through
// builtins.Use. A secret planted in the configuration, quoted by the
// integration's check and by its step's error, appears in none of the
// node's logs, the run's journal and export, the API's answers or the
// spans.
func TestIntegrationSecretNeverLeaves(t *testing.T) {
	const secret = "tok-planted-8c1f0e"
	spans := recordSpans(t)
	reg := builtins.NewRegistry()
	in := builtins.Define("vault", "a test vault", vaultConfig{Addr: "127.0.0.1:1"}, func(_ context.Context, c vaultConfig) (*vault, error) { return &vault{cfg: c}, nil })
	in.Steps = []*builtins.Step{{Name: "vault.read", Retry: builtins.RetryPolicy{MaxAttempts: 1}, Exec: func(_ context.Context, env builtins.Env, _ json.RawMessage) (any, error) {
		v, err := builtins.Use[*vault](env, "vault")
		if err != nil {
			return nil, err
		}
		return nil, builtins.Errorf("vault", "read from %s as %s: denied", v.cfg.Addr, v.cfg.Token)
	}}}
	reg.MustRegisterIntegration(in)
	logs := &syncBuffer{}
	logger := zerolog.New(logs)
	n := newTestNode(t, Options{Registry: reg, Logger: &logger, Integrations: map[string]any{"vault": &vaultConfig{Addr: "127.0.0.1:1", Token: secret}}})

	var st builtins.IntegrationStatus
	bustest.PollUntil(t, func() bool {
		nodes, err := n.Nodes(context.Background())
		if err != nil || len(nodes) != 1 || len(nodes[0].Integrations) != 1 {
			return false
		}
		st = nodes[0].Integrations[0]
		return true
	})
	if st.Name != "vault" || st.State != builtins.StateFailing || st.Error != "integration vault: check: dial 127.0.0.1:1 with token [redacted]: connection refused" || st.Config["token"] != builtins.Redacted {
		t.Fatalf("status: %+v", st)
	}

	end := runScript(t, n, "def main(input):\n    return vault.read()\n", "")
	if end.Status != api.StatusFailed || !strings.Contains(end.Error.Message, "read from 127.0.0.1:1 as [redacted]: denied") {
		t.Fatalf("run: %s %+v", end.Status, end.Error)
	}
	ctx := context.Background()
	exp, err := n.Export(ctx, end.ID)
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.Get(ctx, end.ID)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := n.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := n.journal.Read(ctx, end.ID)
	if err != nil {
		t.Fatal(err)
	}
	for what, v := range map[string]any{"export": exp, "run detail": d, "run end": end, "nodes": nodes, "journal": recs} {
		data, _ := json.Marshal(v)
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the secret is in the %s: %s", what, data)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the secret is in the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the failing check is not logged:\n%s", logs.String())
	}
	for _, s := range spans.Ended() {
		data, _ := json.Marshal(map[string]any{"name": s.Name(), "status": s.Status(), "attrs": s.Attributes(), "events": s.Events()})
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the secret is in span %s: %s", s.Name(), data)
		}
	}
}

// TestSQLRunReplaysWithoutTheDatabase: a run that writes and reads
// PostgreSQL through the sql integration, configured as a node's
// configuration file gives it, replays from its export with the same result
// and no call to the database (every sql.* Exec counted).
func TestSQLRunReplaysWithoutTheDatabase(t *testing.T) {
	table := fmt.Sprintf("drover_e%d", time.Now().UnixNano())
	reg := builtins.Default.Clone()
	n := newTestNode(t, Options{Registry: reg, Integrations: map[string]any{"sql": &sqlbuiltin.Config{Connections: map[string]sqlbuiltin.Connection{
		"db": {DSN: envOr("DROVER_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")}}}}})
	src := fmt.Sprintf(`
def main(input):
    sql.exec("db", "create table %[1]s (id int primary key, customer text)")
    sql.tx("db", [{"exec": "insert into %[1]s values ($1, $2)", "params": [1, input]}, {"exec": "insert into %[1]s values ($1, $2)", "params": [2, input]}])
    rows = sql.query("db", "select id, customer from %[1]s where customer = $1 order by id", [input])
    sql.exec("db", "drop table %[1]s")
    return rows
`, table)
	end := runScript(t, n, src, `"acme"`)
	if end.Status != api.StatusCompleted || string(end.Result) != `[{"customer":"acme","id":1},{"customer":"acme","id":2}]` {
		t.Fatalf("run: %s %s %+v", end.Status, end.Result, end.Error)
	}
	exp, err := n.Export(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	counting := builtins.Default.Clone().Restrict("sql") // the same builtins, each Exec counted
	offline := builtins.NewRegistry()
	for _, name := range counting.Steps() {
		s, _ := counting.Lookup(name)
		c := *s
		c.Exec = func(ctx context.Context, env builtins.Env, args json.RawMessage) (any, error) {
			calls.Add(1)
			return s.Exec(ctx, env, args)
		}
		offline.MustRegister(&c)
	}
	rep, err := replay.Replay(context.Background(), exp, replay.Options{Registry: offline})
	if err != nil || !rep.Matches || rep.Steps != 4 || calls.Load() != 0 {
		t.Fatalf("replay: %v %+v, %d calls to the database", err, rep, calls.Load())
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// TestBreakerFailsFastAndReplays: calls to a host that refuses connections
// open its breaker after the configured failures; the next run's call fails
// at once with circuit_open, naming the host, the failures and when it
// retries; the node's heartbeat shows the breaker; and the failure, being
// journaled, replays exactly.
func TestBreakerFailsFastAndReplays(t *testing.T) {
	n := newTestNode(t, Options{Registry: builtins.Default.Clone(), Breakers: breaker.Config{Default: breaker.Policy{Failures: 2, Cooldown: time.Minute}}})
	src := "def main(input):\n    return http.get(\"http://127.0.0.1:1/x\", timeout=\"2s\").status\n"
	first := runScript(t, n, src, "")
	if first.Status != api.StatusFailed || first.Error.Code != builtins.CodeCircuitOpen {
		t.Fatalf("first run: %s %+v", first.Status, first.Error)
	}
	start := time.Now()
	second := runScript(t, n, src, "")
	if second.Status != api.StatusFailed || second.Error.Code != builtins.CodeCircuitOpen ||
		!strings.Contains(second.Error.Message, "http.get: circuit open for http 127.0.0.1:1 after 2 consecutive failures: calls fail fast until") {
		t.Fatalf("second run: %s %+v", second.Status, second.Error)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the second run took %s: it did not fail fast", took)
	}
	bustest.PollUntil(t, func() bool {
		nodes, err := n.Nodes(context.Background())
		return err == nil && len(nodes) == 1 && len(nodes[0].Breakers) == 1 && nodes[0].Breakers[0].Target == "http 127.0.0.1:1" && nodes[0].Breakers[0].State == breaker.Open
	})
	exp, err := n.Export(context.Background(), second.ID)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replay.Replay(context.Background(), exp, replay.Options{Registry: builtins.Default})
	if err != nil || !rep.Matches || rep.Steps != 1 {
		t.Fatalf("replay: %v %+v", err, rep)
	}
}

// TestSQLConnectionsArePools: each configured connection is a pool the node
// declares (its max_open), one unit per call, so placement sends a
// connection's calls only to nodes that have it; an operator's --resource
// of the same name wins; a call to a connection no node has (a demand no
// node declares, which placement does not hold against any) fails naming
// the connections the node has.
func TestSQLConnectionsArePools(t *testing.T) {
	cfg := &sqlbuiltin.Config{Connections: map[string]sqlbuiltin.Connection{
		"db":    {DSN: envOr("DROVER_TEST_PG", "postgres://postgres@127.0.0.1:5432/test"), MaxOpen: 3},
		"other": {DSN: envOr("DROVER_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")}}}
	n := newTestNode(t, Options{Registry: builtins.Default.Clone(), Integrations: map[string]any{"sql": cfg}, Resources: []string{"sql.other=2"}})
	bustest.PollUntil(t, func() bool {
		nodes, err := n.Nodes(context.Background())
		if err != nil || len(nodes) != 1 {
			return false
		}
		r := nodes[0].Reading.Resources
		return r["sql.db"].Capacity == 3 && r["sql.other"].Capacity == 2
	})
	if end := runScript(t, n, "def main(input):\n    return sql.query(\"db\", \"select 1 as one\")\n", ""); end.Status != api.StatusCompleted || string(end.Result) != `[{"one":1}]` {
		t.Fatalf("run: %s %s %+v", end.Status, end.Result, end.Error)
	}
	end := runScript(t, n, "def main(input):\n    return sql.query(\"nope\", \"select 1\")\n", "")
	if end.Status != api.StatusFailed || !strings.Contains(end.Error.Message, `no connection "nope" on node n1 (it has: db, other;`) {
		t.Fatalf("a connection no node has: %s %+v", end.Status, end.Error)
	}
}

// TestSQLResultOverThePayloadLimit: a query whose rows are over the node's
// payload limit fails the run naming the builtin, and journals nothing of
// the rows.
func TestSQLResultOverThePayloadLimit(t *testing.T) {
	n := newTestNode(t, Options{Registry: builtins.Default.Clone(), PayloadLimit: 4096, Integrations: map[string]any{"sql": &sqlbuiltin.Config{Connections: map[string]sqlbuiltin.Connection{
		"db": {DSN: envOr("DROVER_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")}}}}})
	end := runScript(t, n, "def main(input):\n    return sql.query(\"db\", \"select repeat('x', 10000) as big\")\n", "")
	if end.Status != api.StatusFailed || !strings.Contains(end.Error.Message, "payload too large: sql.query returned") || !strings.Contains(end.Error.Message, "over the payload limit of 4096 bytes") {
		t.Fatalf("run: %s %+v", end.Status, end.Error)
	}
}

// attempts is an interceptor that counts the attempts it sees by builtin,
// and refuses those of a builtin named in refuse; and counts the step
// calls it sees by builtin and outcome, and refuses calls of refuseCall.
type attempts struct {
	builtins.InterceptorBase
	mu         sync.Mutex
	seen       map[string]int
	calls      map[string]int
	refuse     string
	refuseCall string
}

func (a *attempts) InterceptCall(ctx context.Context, c *builtins.StepCall, next builtins.CallFunc) (builtins.StepResult, error) {
	if c.Step.Name == a.refuseCall {
		return builtins.StepResult{}, fmt.Errorf("%s refused before placement", c.Step.Name)
	}
	res, err := next(ctx, c)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case err != nil:
		a.calls[c.Step.Name+" err"]++
	case res.Err != nil:
		a.calls[c.Step.Name+" "+res.Err.Code+" on "+res.Node]++
	default:
		a.calls[c.Step.Name+" "+string(res.Value)+" on "+res.Node+" after "+fmt.Sprint(res.Attempts)]++
	}
	return res, err
}

func (a *attempts) InterceptAttempt(ctx context.Context, at *builtins.StepAttempt, next builtins.AttemptFunc) (json.RawMessage, *builtins.StepError) {
	a.mu.Lock()
	a.seen[at.Step.Name+"#"+fmt.Sprint(at.Context.Attempt)]++
	a.mu.Unlock()
	if at.Step.Name == a.refuse {
		return nil, builtins.Errorf("policy", "%s refused by the node's policy", at.Step.Name)
	}
	return next(ctx, at)
}

// TestInterceptorsSeeEveryAttempt: an interceptor given in Options sees each
// attempt a node executes, retries included, with its number; one that
// refuses an attempt fails the step with its error. It sees each step call
// once, on the coordinator, with its outcome and the node that executed it;
// one that refuses a call fails the run with its error.
func TestInterceptorsSeeEveryAttempt(t *testing.T) {
	var execs atomic.Int64
	ic := &attempts{seen: map[string]int{}, calls: map[string]int{}, refuse: "test.echo", refuseCall: "test.down"}
	n := newTestNode(t, Options{Name: "n1", Registry: testRegistry(&execs), Interceptors: []builtins.Interceptor{ic}})
	end := runScript(t, n, "def main(input):\n    return test.flaky()\n", "")
	if end.Status != api.StatusCompleted || ic.seen["test.flaky#1"] != 1 || ic.seen["test.flaky#3"] != 1 {
		t.Fatalf("flaky: %s %+v, seen %v", end.Status, end.Error, ic.seen)
	}
	if got := ic.calls[`test.flaky "ok" on n1 after 3`]; got != 1 || len(ic.calls) != 1 {
		t.Fatalf("calls seen: %v", ic.calls)
	}
	end = runScript(t, n, "def main(input):\n    return test.echo(1)\n", "")
	if end.Status != api.StatusFailed || end.Error.Code != "policy" || !strings.Contains(end.Error.Message, "test.echo refused by the node's policy") || execs.Load() != 0 {
		t.Fatalf("refused: %s %+v, %d executions", end.Status, end.Error, execs.Load())
	}
	if got := ic.calls["test.echo policy on n1"]; got != 1 {
		t.Fatalf("calls seen: %v", ic.calls)
	}
	end = runScript(t, n, "def main(input):\n    return test.down()\n", "")
	if end.Status != api.StatusFailed || !strings.Contains(end.Error.Message, "test.down refused before placement") || ic.seen["test.down#1"] != 0 {
		t.Fatalf("call refused: %s %+v, attempts seen %v", end.Status, end.Error, ic.seen)
	}
}
