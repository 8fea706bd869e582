package engine

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
)

// TestRunLog runs a script co-located and dispatched on a node writing run
// logs (Options.RunLog; DROVER_TEST_RUNLOG=1 runs every engine test so): the
// runs end as on the default layout; a co-located run whose steps are all
// folded has its log alone for journal, one subject, never sealed; a run with
// results on subjects of their own (a worker's, or a step not yet measured,
// so not folded) is sealed into one part; all read back whole after the node
// is reopened on the data dir.
func TestRunLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs), RunLog: true, DataDir: dir})
	src := `
def main(input):
    a = test.echo({"b": 2, "a": [1, "x"]})
    b = test.echo(input["n"] + 1)
    return {"a": a, "b": b, "flaky": test.flaky()}
`
	var ids []string // co-located (test.flaky, retried, is not folded), dispatched
	for _, dispatch := range []bool{false, true} {
		n.opts.AlwaysDispatch = dispatch
		end := runScript(t, n, src, `{"n": 41}`)
		if end.Status != api.StatusCompleted || string(end.Result) != `{"a":{"a":[1,"x"],"b":2},"b":42,"flaky":"ok"}` || end.Steps != 3 {
			t.Fatalf("dispatch %v: run = %+v, result %s, err %+v", dispatch, end, end.Result, end.Error)
		}
		ids = append(ids, end.ID)
	}
	n.opts.AlwaysDispatch = false
	folded := runScript(t, n, "def main(input):\n    return [test.echo(1), test.echo(2)]\n", "null") // test.echo measured short: folded
	if folded.Status != api.StatusCompleted || string(folded.Result) != "[1,2]" {
		t.Fatalf("folded run = %+v, result %s", folded, folded.Result)
	}
	subjects := func(id string) []string {
		subs, err := n.bus.JournalSubjects(ctx, bus.JournalFilter(id))
		if err != nil {
			t.Fatal(err)
		}
		return subs
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range ids {
		for subs := subjects(id); len(subs) != 1 || !strings.HasSuffix(subs[0], ".sealed.0"); subs = subjects(id) {
			if time.Now().After(deadline) {
				t.Fatalf("run %s, with results on subjects of their own, was not sealed: %v", id, subs)
			}
			time.Sleep(20 * time.Millisecond) // polling interval while the sealer works
		}
	}
	if subs := subjects(folded.ID); len(subs) != 1 || !strings.HasSuffix(subs[0], ".log") {
		t.Fatalf("the co-located run with every step folded: %v, want its log alone", subs)
	}
	grace, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n.Close(grace)
	again := newTestNode(t, Options{Registry: testRegistry(&execs), RunLog: true, DataDir: dir})
	if d, err := again.Get(ctx, folded.ID); err != nil || len(d.Steps) != 2 || string(d.Run.Result) != "[1,2]" {
		t.Fatalf("the folded run after reopening: %v %+v", err, d)
	}
	for _, id := range ids {
		d, err := again.Get(ctx, id)
		if err != nil || d.Run.Status != api.StatusCompleted || len(d.Steps) != 3 || d.Steps[2].Attempts != 3 || d.Steps[1].Outcome != "ok" {
			t.Fatalf("run %s after reopening: %v %+v", id, err, d)
		}
	}
}

// TestClusterGetsRunLogs: a cluster's journal starts without run logs (a
// node of an earlier release could be among its nodes); once every node has
// announced that it reads them, the nodes give it logs, and runs then write
// them.
func TestClusterGetsRunLogs(t *testing.T) {
	if os.Getenv("DROVER_TEST_RUNLOG") != "" {
		t.Skip("DROVER_TEST_RUNLOG forces run logs from the start")
	}
	var execs atomic.Int64
	nodes := startCluster3(t, func(int) Options {
		return Options{Registry: testRegistry(&execs), HeartbeatEvery: 50 * time.Millisecond}
	})
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for !n.bus.RunLog() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no run logs 20 s after the cluster started", n.Name())
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}
	end := runScript(t, nodes[0], "def main(input):\n    return [test.echo(1), test.echo(2)]\n", `null`)
	msgs, err := nodes[0].bus.Read(context.Background(), bus.JournalSubject(end.ID, "log", ""))
	if err != nil || len(msgs) == 0 {
		t.Fatalf("the run's log: %d messages, %v", len(msgs), err)
	}
}
