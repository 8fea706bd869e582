package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/replay"
	"github.com/droverhq/drover/starlark/builtins"
	randb "github.com/droverhq/drover/starlark/builtins/rand"
	timeb "github.com/droverhq/drover/starlark/builtins/time"
)

// commitRegistry is testRegistry with the side values (time.now, rand.*,
// uuid) and test.probe, a step with an outside effect that calls probe.
func commitRegistry(execs *atomic.Int64, probe func(ctx context.Context, env builtins.Env)) *builtins.Registry {
	r := testRegistry(execs)
	timeb.Register(r)
	randb.Register(r)
	r.MustRegister(&builtins.Step{
		Name: "test.probe",
		Exec: func(ctx context.Context, env builtins.Env, _ json.RawMessage) (any, error) {
			probe(ctx, env)
			return "probed", nil
		},
	})
	return r
}

// startAwaited starts src as a synchronous trigger does, and waits for its end.
func startAwaited(t *testing.T, n *Node, src string) *api.Run {
	t.Helper()
	return runRequest(t, n, api.StartRequest{Script: testScript(src), Input: json.RawMessage(`{"who":"acme"}`), Awaited: true})
}

// TestAwaitedRunOfSideValuesIsJournaledOnce: a run whose caller waits for its
// end, and whose steps are all side values, is journaled once, at its end,
// as one sealed part, and indexed once, completed; it reads, exports and
// replays like any other run.
func TestAwaitedRunOfSideValuesIsJournaledOnce(t *testing.T) {
	var execs atomic.Int64
	reg := commitRegistry(&execs, func(context.Context, builtins.Env) {})
	n := newTestNode(t, Options{Registry: reg})
	ctx := context.Background()
	runScript(t, n, `def main(input): return 1`, `null`) // the journal is not empty
	end := startAwaited(t, n, `
def main(input):
    return {"t": str(time.now()), "id": uuid(), "n": rand.int(1000), "who": input["who"]}
`)
	if end.Status != api.StatusCompleted || end.Steps != 3 {
		t.Fatalf("run: %+v", end)
	}
	msgs, err := n.bus.Read(ctx, bus.JournalFilter(end.ID))
	if err != nil || len(msgs) != 1 || msgs[0].Subject != bus.JournalSubject(end.ID, "sealed", "0") {
		t.Fatalf("the run's journal is %d messages (%v), want its sealed part alone", len(msgs), err)
	}
	if rec, err := n.Record(ctx, end.ID); err != nil || rec.Status != api.StatusCompleted || rec.Steps != 3 {
		t.Fatalf("index: %v %+v", err, rec)
	}
	if running, err := n.runs.Running(ctx); err != nil || len(running) != 0 {
		t.Fatalf("running: %v %+v", err, running)
	}
	if list, err := n.List(ctx, api.ListFilter{Status: api.StatusCompleted, Script: "t", Limit: 10}); err != nil || len(list) != 2 || list[0].ID != end.ID {
		t.Fatalf("listing by status and script: %v %+v", err, list)
	}
	d, err := n.Get(ctx, end.ID)
	if err != nil || len(d.Steps) != 3 || d.Steps[0].Builtin != "time.now" {
		t.Fatalf("detail: %v %+v", err, d)
	}
	var kinds []api.EntryKind
	if err := n.Events(ctx, end.ID, func(ev api.Event) bool { kinds = append(kinds, ev.Kind); return true }); err != nil || len(kinds) != 5 || kinds[0] != api.EntryStart || kinds[4] != api.EntryEnd {
		t.Fatalf("events: %v %v", err, kinds)
	}
	exp, err := n.Export(ctx, end.ID)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replay.Replay(ctx, exp, replay.Options{Registry: reg})
	if err != nil || !rep.Matches || rep.Steps != 3 {
		t.Fatalf("replay: %v %+v", err, rep)
	}
}

// TestAwaitedRunCommitsBeforeItsFirstOutput: a step with an outside effect
// executes only once the run's start and earlier side values are journaled
// and the run is indexed as running, whether the step is folded or
// dispatched.
func TestAwaitedRunCommitsBeforeItsFirstOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{{"co-located", Options{}}, {"dispatched", Options{AlwaysDispatch: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			var execs atomic.Int64
			var n *Node
			var seen atomic.Value
			var armed atomic.Bool
			probe := func(ctx context.Context, _ builtins.Env) {
				if !armed.Load() {
					return // warming up
				}
				var run string
				n.mu.Lock()
				for id := range n.active {
					run = id // the test's one run
				}
				n.mu.Unlock()
				rec, err := n.Record(ctx, run)
				recs, rerr := n.journal.Read(ctx, run)
				var kinds []string
				for _, r := range recs {
					kinds = append(kinds, string(r.Kind)+"/"+r.Key)
				}
				if err != nil || rerr != nil || rec.Status != api.StatusRunning {
					seen.Store([]string{"not indexed as running"})
					return
				}
				seen.Store(kinds)
			}
			tc.opts.Registry = commitRegistry(&execs, probe)
			n = newTestNode(t, tc.opts)
			// Measured short, test.probe is then folded when co-located: no
			// call entry of its own precedes it.
			runScript(t, n, "def main(input):\n    for i in range(8): test.probe()\n", `null`)
			armed.Store(true)
			end := startAwaited(t, n, `
def main(input):
    t = time.now()
    return test.probe()
`)
			if end.Status != api.StatusCompleted {
				t.Fatalf("run: %+v", end)
			}
			got, _ := seen.Load().([]string)
			if len(got) < 2 || got[0] != "start/" || got[1] != "result/1" {
				t.Fatalf("when the step executed, the journal held %v; want the start and the side value", got)
			}
			recs, err := n.journal.Read(context.Background(), end.ID)
			if err != nil || recs[len(recs)-1].Kind != api.EntryEnd {
				t.Fatalf("journal: %v %+v", err, recs)
			}
		})
	}
}

// TestAwaitedRunTimedOutIsIndexed: a synchronous trigger that stops waiting
// answers with the run's id, so the run is journaled and indexed first.
func TestAwaitedRunTimedOutIsIndexed(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: commitRegistry(&execs, func(context.Context, builtins.Env) {})})
	ctx := context.Background()
	if _, err := n.Deploy(ctx, api.DeployRequest{Script: api.Script{Name: "slow", Main: "main.star", Files: map[string]string{"main.star": `
def main(input):
    t = time.now()
    for i in range(1000000):
        pass
    return 1
`}}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/run/slow?timeout=5ms", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get(api.RunIDHeader)
	if resp.StatusCode != http.StatusGatewayTimeout || id == "" {
		t.Fatalf("status %d, run %q; want 504 with the run's id", resp.StatusCode, id)
	}
	if rec, err := n.Record(ctx, id); err != nil || rec.Status != api.StatusRunning {
		t.Fatalf("the run whose id the trigger gave out: %v %+v; want it indexed as running", err, rec)
	}
	if recs, err := n.journal.Read(ctx, id); err != nil || len(recs) != 2 {
		t.Fatalf("its journal: %v %+v; want its start and side value", err, recs)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if end, err := n.Wait(wctx, id); err != nil || end.Status != api.StatusCompleted {
		t.Fatalf("run: %v %+v", err, end)
	}
}
