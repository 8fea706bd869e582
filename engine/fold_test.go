package engine

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/replay"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/rand"
)

// entryKinds returns the kinds of run id's journal entries for step key.
func entryKinds(t *testing.T, n *Node, id, key string) []api.EntryKind {
	t.Helper()
	recs, err := n.journal.Read(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []api.EntryKind
	for _, r := range recs {
		if r.Key == key && (r.Kind == api.EntryCall || r.Kind == api.EntryResult) {
			kinds = append(kinds, r.Kind)
		}
	}
	return kinds
}

// A co-located side value, and a builtin measured as short, journal their
// call with their result: one entry. A builtin not yet measured journals its
// call first. runs show, the events and replay see the folded call.
func TestFoldedCall(t *testing.T) {
	var execs atomic.Int64
	reg := testRegistry(&execs)
	rand.Register(reg)
	n := newTestNode(t, Options{Registry: reg})
	end := runScript(t, n, `
def main(input):
    out = [rand.int(10)]
    for i in range(6):
        out.append(test.echo(i))
    return out
`, `{}`)
	if end.Status != api.StatusCompleted {
		t.Fatalf("run: %s %+v", end.Status, end.Error)
	}
	if k := entryKinds(t, n, end.ID, "1"); len(k) != 1 || k[0] != api.EntryResult {
		t.Fatalf("rand.int (a side value): entries %v, want one result", k)
	}
	if k := entryKinds(t, n, end.ID, "2"); len(k) != 2 || k[0] != api.EntryCall {
		t.Fatalf("first test.echo (not yet measured): entries %v, want call and result", k)
	}
	if k := entryKinds(t, n, end.ID, "7"); len(k) != 1 || k[0] != api.EntryResult {
		t.Fatalf("sixth test.echo (measured short): entries %v, want one result", k)
	}
	d, err := n.Get(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Steps) != 7 || d.Steps[0].Builtin != "rand.int" || d.Steps[6].Builtin != "test.echo" || d.Steps[6].Outcome != "ok" || string(d.Steps[6].Args) != "5" {
		t.Fatalf("runs show: %+v", d.Steps)
	}
	var results int
	err = n.Events(context.Background(), end.ID, func(e api.Event) bool {
		if e.Kind == api.EntryResult {
			results++
			if !strings.Contains(string(e.Data), `"builtin":`) {
				t.Errorf("result event without its builtin: %s", e.Data)
			}
		}
		return true
	})
	if err != nil || results != 7 {
		t.Fatalf("%d result events (want 7): %v", results, err)
	}
	// Replay answers every step from the journal, folded ones included.
	exp, err := n.Export(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	before := execs.Load()
	rep, err := replay.Replay(context.Background(), exp, replay.Options{Registry: reg})
	if err != nil || !rep.Matches || rep.Journaled != 7 || execs.Load() != before {
		t.Fatalf("replay: %+v %v (%d executions)", rep, err, execs.Load()-before)
	}
}

// A run stopped after a folded step is adopted without executing it again:
// the value its script saw stays the one journaled.
func TestFoldedCallRecovered(t *testing.T) {
	var execs, holds atomic.Int64
	held := make(chan struct{})
	reg := recoveryRegistry(&execs, &holds, held)
	var draws atomic.Int64
	reg.MustRegister(&builtins.Step{Name: "test.draw", Local: true, Exec: func(context.Context, builtins.Env, json.RawMessage) (any, error) {
		return draws.Add(1), nil
	}})
	dir := t.TempDir()
	id := stopMidRun(t, dir, reg, held, `
def main(input):
    return [test.draw(), test.hold()]
`)
	n := newTestNode(t, Options{Name: "n1", DataDir: dir, Registry: reg})
	end := waitEnd(t, n, id)
	if end.Status != api.StatusCompleted || string(end.Result) != `[1,"done"]` || draws.Load() != 1 {
		t.Fatalf("recovered run: %s %s, test.draw executed %d times (want 1)", end.Status, end.Result, draws.Load())
	}
}
