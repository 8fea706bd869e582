package engine

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/starlark/builtins"
)

// recoveryRegistry adds test.hold: its first execution blocks until its context
// ends (the node stops under it); later executions return "done". execs counts
// executions of test.echo, holds those of test.hold.
func recoveryRegistry(execs, holds *atomic.Int64, held chan struct{}) *builtins.Registry {
	reg := testRegistry(execs)
	reg.MustRegister(&builtins.Step{Name: "test.hold", Exec: func(ctx context.Context, _ builtins.Env, _ json.RawMessage) (any, error) {
		if holds.Add(1) == 1 {
			close(held)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return "done", nil
	}})
	return reg
}

func waitEnd(t *testing.T, n *Node, id string) *api.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	end, err := n.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	return end
}

// stopMidRun starts src on a node in dir, waits until test.hold is executing,
// and stops the node with a short grace: the run is left unfinished.
func stopMidRun(t *testing.T, dir string, reg *builtins.Registry, held chan struct{}, src string) string {
	t.Helper()
	n, err := NewNode(context.Background(), Options{Name: "n1", DataDir: dir, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Start(context.Background(), api.StartRequest{Script: testScript(src), Input: json.RawMessage(`{"k": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("run never reached test.hold")
	}
	grace, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	n.Close(grace)
	return r.ID
}

const recoverScript = `
def main(input):
    out = []
    for i in range(5):
        out.append(test.echo(i))
    out.append(test.hold())
    out.append(test.echo("after"))
    return out
`

func TestRecoveryContinuesWithoutRepeatingSteps(t *testing.T) {
	var execs, holds atomic.Int64
	held := make(chan struct{})
	reg := recoveryRegistry(&execs, &holds, held)
	dir := t.TempDir()
	id := stopMidRun(t, dir, reg, held, recoverScript)
	if execs.Load() != 5 {
		t.Fatalf("before restart: %d echo executions", execs.Load())
	}
	n := newTestNode(t, Options{Name: "n1", DataDir: dir, Registry: reg}) // adopts the run
	end := waitEnd(t, n, id)
	if end.Status != api.StatusCompleted || string(end.Result) != `[0,1,2,3,4,"done","after"]` {
		t.Fatalf("recovered run: %s %s %+v", end.Status, end.Result, end.Error)
	}
	if execs.Load() != 6 || holds.Load() != 2 {
		t.Fatalf("completed steps ran again: echo %d times (want 6), hold %d times (want 2)", execs.Load(), holds.Load())
	}
	d, _ := n.Get(context.Background(), id)
	if d.Steps[5].Attempts != 1 || d.Steps[5].Outcome != "ok" || len(d.Steps) != 7 {
		t.Fatalf("steps after recovery: %+v", d.Steps)
	}
	// The step under way when the node stopped was placed again: both
	// placements are shown, the second saying why.
	if p := d.Steps[5].Placements; len(p) != 2 || p[1].Attempt != 2 || !strings.Contains(p[1].Why, "run adopted") || len(d.Steps[4].Placements) != 0 {
		t.Fatalf("placements of the re-executed step: %+v", p)
	}
}

func TestRecoveryDivergenceBlocksAndResumes(t *testing.T) {
	var execs, holds atomic.Int64
	held := make(chan struct{})
	dir := t.TempDir()
	id := stopMidRun(t, dir, recoveryRegistry(&execs, &holds, held), held, recoverScript)
	// The node comes back with a test.echo that canonicalises its argument
	// differently: the journal no longer matches. The run must block, not fail.
	changed := recoveryRegistry(&execs, &holds, make(chan struct{}))
	changed = changed.Restrict("test.hold", "test.flaky", "test.big", "test.down")
	changed.MustRegister(&builtins.Step{Name: "test.echo",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var x starlark.Value
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "x", &x); err != nil {
				return nil, err
			}
			v, err := builtins.ToJSON(x)
			return map[string]any{"wrapped": v}, err
		},
		Exec: func(_ context.Context, _ builtins.Env, args json.RawMessage) (any, error) { return args, nil },
	})
	n := newTestNode(t, Options{Name: "n1", DataDir: dir, Registry: changed})
	rec := pollStatus(t, n, id, api.StatusBlocked)
	for _, want := range []string{"non-determinism at step 1", `journaled: test.echo(0) at t.star:5:29`, `new:       test.echo({"wrapped":0}) at t.star:5:29`} {
		if !strings.Contains(rec.Error.Message, want) {
			t.Fatalf("blocked error lacks %q:\n%s", want, rec.Error.Message)
		}
	}
	n.Close(context.Background())
	// The fix: the original builtins. Resume continues the run.
	n2 := newTestNode(t, Options{Name: "n1", DataDir: dir, Registry: recoveryRegistry(&execs, &holds, make(chan struct{})), NoRecovery: true})
	if _, err := n2.Resume(context.Background(), id, nil, "test"); err != nil {
		t.Fatal(err)
	}
	if end := waitEnd(t, n2, id); end.Status != api.StatusCompleted {
		t.Fatalf("resumed: %s %+v", end.Status, end.Error)
	}
}

func pollStatus(t *testing.T, n *Node, id, status string) *api.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec, err := n.runs.Record(context.Background(), id)
		if err == nil && rec.Status == status {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s never became %s: %+v %v", id, status, rec, err)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// TestDurableSleep: a run sleeping longer than a second is parked (no goroutine,
// no Starlark thread), survives a restart, and wakes on time.
func TestDurableSleep(t *testing.T) {
	var execs atomic.Int64
	reg := testRegistry(&execs)
	reg.MustRegister(sleepStep())
	dir := t.TempDir()
	n, err := NewNode(context.Background(), Options{Name: "n1", DataDir: dir, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := n.Start(context.Background(), api.StartRequest{Script: testScript("def main(input):\n    test.echo(1)\n    sleep('2s')\n    return test.echo(2)\n")})
	if err != nil {
		t.Fatal(err)
	}
	rec := pollWake(t, n, r.ID)
	n.mu.Lock()
	active := len(n.active)
	n.mu.Unlock()
	if active != 0 {
		t.Fatalf("a parked run is still active (holding a thread)")
	}
	if d := rec.WakeAt.Sub(start); d < 2*time.Second || d > 3*time.Second {
		t.Fatalf("wake at +%s, want about +2s", d)
	}
	n.Close(context.Background()) // the node goes away while the run sleeps
	n2 := newTestNode(t, Options{Name: "n1", DataDir: dir, Registry: reg})
	end := waitEnd(t, n2, r.ID)
	took := time.Since(start)
	if end.Status != api.StatusCompleted || string(end.Result) != "2" || execs.Load() != 2 {
		t.Fatalf("after wake: %s %s echo×%d", end.Status, end.Result, execs.Load())
	}
	if took < 2*time.Second || took > 3*time.Second {
		t.Fatalf("woke after %s, want 2s ± 1s", took)
	}
}

func pollWake(t *testing.T, n *Node, id string) *api.Run {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rec, err := n.runs.Record(context.Background(), id); err == nil && rec.WakeAt != nil {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatal("run never parked")
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestCancel(t *testing.T) {
	for _, dispatch := range []bool{false, true} {
		t.Run(map[bool]string{false: "colocated", true: "dispatched"}[dispatch], func(t *testing.T) {
			var execs, holds atomic.Int64
			held := make(chan struct{})
			n := newTestNode(t, Options{Registry: recoveryRegistry(&execs, &holds, held), AlwaysDispatch: dispatch})
			r, err := n.Start(context.Background(), api.StartRequest{Script: testScript("def main(input):\n    test.hold()\n")})
			if err != nil {
				t.Fatal(err)
			}
			<-held
			if _, err := n.Cancel(context.Background(), r.ID, "alice", "customer asked"); err != nil {
				t.Fatal(err)
			}
			end := waitEnd(t, n, r.ID)
			if end.Status != api.StatusCancelled || end.Error.Message != "cancelled by alice: customer asked" {
				t.Fatalf("cancelled run: %s %+v", end.Status, end.Error)
			}
			if _, err := n.Cancel(context.Background(), r.ID, "bob", ""); err == nil || !strings.Contains(err.Error(), "already cancelled") {
				t.Fatalf("second cancel: %v", err)
			}
		})
	}
}

// TestPatched: a run started on v1 and moved to v2 while parked takes the old
// path at patched(); a new run on v2 takes the new one.
func TestPatched(t *testing.T) {
	var execs atomic.Int64
	reg := testRegistry(&execs)
	reg.MustRegister(sleepStep())
	n := newTestNode(t, Options{Registry: reg})
	v1 := "def main(input):\n    test.echo(1)\n    sleep('1500ms')\n    return 'v1'\n"
	v2 := "def main(input):\n    test.echo(1)\n    if patched('extra-echo'):\n        test.echo('new')\n    sleep('1500ms')\n    return 'v2'\n"
	old, err := n.Start(context.Background(), api.StartRequest{Script: testScript(v1)})
	if err != nil {
		t.Fatal(err)
	}
	pollWake(t, n, old.ID)
	s2 := testScript(v2)
	if _, err := n.Resume(context.Background(), old.ID, &s2, "test"); err != nil {
		t.Fatal(err)
	}
	fresh, err := n.Start(context.Background(), api.StartRequest{Script: testScript(v2)})
	if err != nil {
		t.Fatal(err)
	}
	oldEnd, freshEnd := waitEnd(t, n, old.ID), waitEnd(t, n, fresh.ID)
	if oldEnd.Status != api.StatusCompleted || string(oldEnd.Result) != `"v2"` || oldEnd.Steps != 2 {
		t.Fatalf("old run on v2: %s %s steps %d %+v", oldEnd.Status, oldEnd.Result, oldEnd.Steps, oldEnd.Error)
	}
	if freshEnd.Status != api.StatusCompleted || freshEnd.Steps != 3 {
		t.Fatalf("new run on v2: %s steps %d %+v", freshEnd.Status, freshEnd.Steps, freshEnd.Error)
	}
}

// TestCancelUnownedRun: a run left unfinished by a stopped node, with nobody
// coordinating it, is ended by cancel.
func TestCancelUnownedRun(t *testing.T) {
	var execs, holds atomic.Int64
	held := make(chan struct{})
	reg := recoveryRegistry(&execs, &holds, held)
	dir := t.TempDir()
	id := stopMidRun(t, dir, reg, held, recoverScript)
	n := newTestNode(t, Options{Name: "n1", DataDir: dir, Registry: reg, NoRecovery: true})
	if _, err := n.Cancel(context.Background(), id, "ops", "stuck"); err != nil {
		t.Fatal(err)
	}
	end := waitEnd(t, n, id)
	if end.Status != api.StatusCancelled || end.Error.Message != "cancelled by ops: stuck" || holds.Load() != 1 {
		t.Fatalf("%s %+v holds %d", end.Status, end.Error, holds.Load())
	}
	if end.Steps != 6 { // five echoes and the hold, journaled before it stopped
		t.Fatalf("ended with %d steps, want the 6 it journaled", end.Steps)
	}
}

// sleepStep is a durable timer like the time module's sleep: sleep("2s").
func sleepStep() *builtins.Step {
	return &builtins.Step{Name: "sleep", Timer: func(args json.RawMessage) (time.Duration, error) {
		var d string
		json.Unmarshal(args, &d)
		return time.ParseDuration(d)
	}, Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
		var d string
		err := starlark.UnpackArgs(b.Name(), args, kwargs, "d", &d)
		return d, err
	}, Exec: func(context.Context, builtins.Env, json.RawMessage) (any, error) { return nil, nil }}
}

// TestRecoveryEndsRunsIndexedButNotJournaled: a run in the index as running
// whose start was never journaled (its node stopped between the two writes)
// is marked failed, "did not start", by its node's recovery, rather than
// left running for ever.
func TestRecoveryEndsRunsIndexedButNotJournaled(t *testing.T) {
	dir := t.TempDir()
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs), DataDir: dir})
	ctx := context.Background()
	id := bus.RunID(ulid.Make().String(), 0)
	rec := api.Run{ID: id, Script: "t", Status: api.StatusRunning, Coordinator: "n1", Started: time.Now().UTC(), Attrs: map[string]string{}}
	if err := n.runs.Put(ctx, rec, "", nil); err != nil {
		t.Fatal(err)
	}
	grace, cancel := context.WithTimeout(ctx, time.Second)
	n.Close(grace)
	cancel()
	n2 := newTestNode(t, Options{Registry: testRegistry(&execs), DataDir: dir})
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := n2.Record(ctx, id)
		if err == nil && got.Status == api.StatusFailed && got.Error != nil && strings.Contains(got.Error.Message, "did not start") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after recovery: %v %+v", err, got)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
