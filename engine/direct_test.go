package engine

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/dispatch"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/placement"
)

const fiveEchoes = `
def main(input):
    for i in range(4):
        test.echo(i)
    return test.echo(7)
`

// journalKinds counts run's journal entries by kind.
func journalKinds(t *testing.T, n *Node, run string) map[api.EntryKind]int {
	t.Helper()
	recs, err := n.journal.Read(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[api.EntryKind]int{}
	for _, r := range recs {
		kinds[r.Kind]++
	}
	return kinds
}

// TestShortDispatchedStepsSentDirectly: once a builtin is measured short,
// a dispatched step of it is sent directly (a core message, not the inbox
// stream) and journaled as one entry, its call folded into its result, by
// the coordinator; until then each is a call entry and a result.
func TestShortDispatchedStepsSentDirectly(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs), AlwaysDispatch: true})
	var direct atomic.Int64
	stop, err := n.bus.Subscribe(bus.ExecSubject("n1"), func(bus.Msg) { direct.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	end := runScript(t, n, fiveEchoes, "")
	if end.Status != api.StatusCompleted || string(end.Result) != "7" || execs.Load() != 5 {
		t.Fatalf("run: %s %s %+v, %d executions", end.Status, end.Result, end.Error, execs.Load())
	}
	bustest.PollUntil(t, func() bool { return direct.Load() == 2 })
	if kinds := journalKinds(t, n, end.ID); kinds[api.EntryCall] != 3 || kinds[api.EntryResult] != 5 {
		t.Fatalf("journal: %v; want the 3 steps measured before as calls and results, the 2 after as results", kinds)
	}
	d, err := n.Get(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Steps[4]; s.Node != "n1" || s.Builtin != "test.echo" || s.Outcome != "ok" || string(s.Value) != "7" || s.Pos == "" {
		t.Fatalf("direct step: %+v", s)
	}
}

// ghostLearner places like firstGhost and learns like the default policy.
type ghostLearner struct {
	*firstGhost
	placement.Learner
}

func (g ghostLearner) Place(ctx context.Context, req placement.Request) (placement.Decision, error) {
	return g.firstGhost.Place(ctx, req)
}

// TestDirectStepPlacedAgainWhenNodeLost: a step sent directly to a node lost
// before it answers is placed again and executed once, and its one entry
// names the node that executed it and why it was placed again.
func TestDirectStepPlacedAgainWhenNodeLost(t *testing.T) {
	var execs atomic.Int64
	learner := placement.NewAdaptive(placement.NewMemView(time.Minute, nil), placement.Options{})
	n := newTestNode(t, Options{Registry: testRegistry(&execs), Placement: ghostLearner{&firstGhost{placed: map[string]int{}}, learner}})
	waitLost(t, n, "ghost")
	end := runScript(t, n, fiveEchoes, "")
	if end.Status != api.StatusCompleted || string(end.Result) != "7" || execs.Load() != 5 {
		t.Fatalf("run: %s %s %+v, %d executions", end.Status, end.Result, end.Error, execs.Load())
	}
	if kinds := journalKinds(t, n, end.ID); kinds[api.EntryCall] != 3 || kinds[api.EntryPlace] != 3 || kinds[api.EntryResult] != 5 {
		t.Fatalf("journal: %v", kinds)
	}
	d, err := n.Get(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Steps[4]; s.Node != "n1" || !strings.Contains(s.Reason, "ghost was lost before it answered") || len(s.Placements) != 0 {
		t.Fatalf("direct step: %+v", s)
	}
}

// TestDirectWaitsForEveryNode: while a live node does not answer direct
// calls (an earlier build, mid-upgrade), short steps go through the inbox,
// as before: each journals its call, and the worker its result.
func TestDirectWaitsForEveryNode(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs), AlwaysDispatch: true, Placement: placement.Fixed{Node: "n1"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	old := cluster.New(cluster.Options{Bus: n.bus, Name: "old", Features: journal.Features,
		Reading: func() meter.Reading { return meter.Reading{Node: "old", Time: time.Now()} }})
	if err := old.Run(ctx); err != nil {
		t.Fatal(err)
	}
	bustest.PollUntil(t, func() bool { return n.cluster.IsLive("old") })
	if n.cluster.AllHave(dispatch.Feature) {
		t.Fatal("a node without the feature is live, and every node has it")
	}
	end := runScript(t, n, fiveEchoes, "")
	if end.Status != api.StatusCompleted || execs.Load() != 5 {
		t.Fatalf("run: %s %+v, %d executions", end.Status, end.Error, execs.Load())
	}
	if kinds := journalKinds(t, n, end.ID); kinds[api.EntryCall] != 5 || kinds[api.EntryResult] != 5 {
		t.Fatalf("journal: %v; want every step's call and result", kinds)
	}
}
