package engine

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/placement"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/tag"
)

// firstGhost places a step's first attempt on a node that does not exist
// (lost at once) and every later one on this node.
type firstGhost struct {
	mu     sync.Mutex
	placed map[string]int
}

func (p *firstGhost) Place(_ context.Context, req placement.Request) (placement.Decision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.placed[req.Step]++
	if p.placed[req.Step] == 1 {
		return placement.Decision{Node: "ghost", Reason: "test: the ghost first"}, nil
	}
	return placement.Decision{Node: req.Coordinator, Reason: "test: then the coordinator"}, nil
}

// waitLost waits until n counts node as lost.
func waitLost(t *testing.T, n *Node, node string) {
	t.Helper()
	bustest.PollUntil(t, func() bool {
		lost, release := n.cluster.Lost(node)
		defer release()
		select {
		case <-lost:
			return true
		default:
			return false
		}
	})
}

// TestStepPlacedAgainShowsEachAttempt: a step whose executing node is lost
// before it answers is placed again, and the run's detail shows each
// placement: node, reason, and why it was placed again.
func TestStepPlacedAgainShowsEachAttempt(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs), Placement: &firstGhost{placed: map[string]int{}}})
	// The ghost is lost at once only once this node knows the cluster.
	bustest.PollUntil(t, func() bool {
		return n.cluster.IsLive("n1") && len(n.cluster.Nodes()) == 1 && n.cluster.Nodes()[0].Age >= 0
	})
	waitLost(t, n, "ghost")
	end := runScript(t, n, "def main(input):\n    return test.echo(7)\n", "")
	if end.Status != api.StatusCompleted || string(end.Result) != "7" || execs.Load() != 1 {
		t.Fatalf("run: %s %s %+v, %d executions", end.Status, end.Result, end.Error, execs.Load())
	}
	d, err := n.Get(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	s := d.Steps[0]
	if s.Node != "n1" || len(s.Placements) != 2 {
		t.Fatalf("step: node %s, placements %+v", s.Node, s.Placements)
	}
	first, second := s.Placements[0], s.Placements[1]
	if first.Attempt != 1 || first.Node != "ghost" || first.Reason != "test: the ghost first" || first.Why != "" {
		t.Errorf("first placement %+v", first)
	}
	if second.Attempt != 2 || second.Node != "n1" || second.Reason != "test: then the coordinator" || !strings.Contains(second.Why, "ghost was lost") {
		t.Errorf("second placement %+v", second)
	}
}

// TestTagJournaledOnceAcrossWake: tag() called before a durable sleep is
// journaled once, not again when the run wakes and replays its journal.
func TestTagJournaledOnceAcrossWake(t *testing.T) {
	var execs atomic.Int64
	reg := testRegistry(&execs)
	reg.MustRegister(sleepStep())
	tag.Register(reg)
	n := newTestNode(t, Options{Registry: reg})
	end := runScript(t, n, `
def main(input):
    tag(customer = "acme")
    sleep("1100ms")
    tag(tier = "gold")
    return test.echo(1)
`, "")
	if end.Status != api.StatusCompleted {
		t.Fatalf("run: %s %+v", end.Status, end.Error)
	}
	exp, err := n.Export(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, e := range exp.Journal {
		if e.Kind == api.EntryTag {
			tags = append(tags, e.Key+":"+string(e.Data[:strings.Index(string(e.Data), "}")+1]))
		}
	}
	if len(tags) != 2 || !strings.HasPrefix(tags[0], `1:{"attrs":{"customer":"acme"}`) || !strings.HasPrefix(tags[1], `2:{"attrs":{"tier":"gold"}`) {
		t.Fatalf("tag entries %q, want customer then tier, once each", tags)
	}
	d, err := n.Get(context.Background(), end.ID)
	if err != nil || len(d.Tags) != 2 || d.Attrs["customer"] != "acme" || d.Attrs["tier"] != "gold" {
		t.Fatalf("detail: tags %+v attrs %v %v", d.Tags, d.Attrs, err)
	}
}

// TestFreedPoolUnitPlacesWaitingStep: a step waiting for a pool unit that
// the latest reading shows taken is placed as soon as the unit is given back,
// not at the next heartbeat (made an hour long here: without the early
// heartbeat that giving units back sends, the step would wait out
// placement's MaxWait).
func TestFreedPoolUnitPlacesWaitingStep(t *testing.T) {
	var execs atomic.Int64
	reg := testRegistry(&execs)
	started := make(chan string, 2)
	release := make(chan struct{})
	reg.MustRegister(&builtins.Step{Name: "test.db", Exec: func(ctx context.Context, _ builtins.Env, args json.RawMessage) (any, error) {
		started <- string(args)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "done", nil
	}, Args: func(_ *starlark.Builtin, args starlark.Tuple, _ []starlark.Tuple) (any, error) {
		return args[0].String(), nil
	}})
	n := newTestNode(t, Options{Registry: reg, HeartbeatEvery: time.Hour, Resources: []string{"db=1,builtin=test.db"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := func(who string) string {
		r, err := n.Start(ctx, api.StartRequest{Script: testScript("def main(input):\n    return test.db(input)\n"), Input: json.RawMessage(`"` + who + `"`)})
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	a := start("a")
	<-started
	// A reading taken while a holds the unit: placement sees the pool full.
	n.cluster.Beat()
	bustest.PollUntil(t, func() bool {
		for _, st := range n.view.Nodes() {
			if db, ok := st.Resources["db"]; ok && db.Free == 0 {
				return true
			}
		}
		return false
	})
	b := start("b")
	select {
	case who := <-started:
		t.Fatalf("%s started while a holds the pool of 1", who)
	case <-time.After(50 * time.Millisecond): // b waits in placement
	}
	release <- struct{}{} // a gives its unit back
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting step was not placed within 10s of the unit's release")
	}
	close(release)
	for _, id := range []string{a, b} {
		if end := waitEnd(t, n, id); end.Status != api.StatusCompleted {
			t.Fatalf("run %s: %s %+v", id, end.Status, end.Error)
		}
	}
}
