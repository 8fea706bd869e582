package engine

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/placement"
)

// TestListPages: a listing pages through the runs with Before and Next's
// cursor, and filters by coordinator and by deployed version.
func TestListPages(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs), Placement: placement.Local{}})
	ctx := context.Background()
	if _, err := n.Deploy(ctx, bundle("greet", map[string]string{"main.star": greetV1})); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		if i == 3 {
			if _, err := n.Deploy(ctx, bundle("greet", map[string]string{"main.star": greetV2})); err != nil {
				t.Fatal(err)
			}
		}
		r, err := n.Start(ctx, api.StartRequest{Script: api.Script{Name: "greet"}})
		if err != nil {
			t.Fatal(err)
		}
		n.Wait(ctx, r.ID)
		ids = append([]string{r.ID}, ids...) // newest first
	}
	var got []string
	for before := ""; ; {
		page, err := n.List(ctx, api.ListFilter{Limit: 2, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		if len(page) < 2 {
			break
		}
		before = page[len(page)-1].ID
	}
	if strings.Join(got, " ") != strings.Join(ids, " ") {
		t.Fatalf("pages:\n%v\nwant\n%v", got, ids)
	}
	if runs, _ := n.List(ctx, api.ListFilter{Script: "greet", Version: 1}); len(runs) != 3 || runs[0].ID != ids[2] {
		t.Fatalf("version 1: %d runs", len(runs))
	}
	if runs, _ := n.List(ctx, api.ListFilter{Script: "greet", Version: 2}); len(runs) != 2 {
		t.Fatalf("version 2: %d runs", len(runs))
	}
	if runs, _ := n.List(ctx, api.ListFilter{Node: n.Name()}); len(runs) != 5 {
		t.Fatalf("node %s: %d runs", n.Name(), len(runs))
	}
	if runs, _ := n.List(ctx, api.ListFilter{Node: "elsewhere"}); len(runs) != 0 {
		t.Fatalf("node elsewhere: %d runs", len(runs))
	}
}

// TestReplayCheck: a run replays against the live version of its script
// ("same result"), against a version that calls differently (the
// divergence, both calls), and against a pasted script; a pasted script
// that does not compile, or has no main file, is refused.
func TestReplayCheck(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	ctx := context.Background()
	if _, err := n.Deploy(ctx, bundle("greet", map[string]string{"main.star": greetV1})); err != nil {
		t.Fatal(err)
	}
	r, err := n.Start(ctx, api.StartRequest{Script: api.Script{Name: "greet"}, Input: []byte(`"hi"`)})
	if err != nil {
		t.Fatal(err)
	}
	n.Wait(ctx, r.ID)
	before := execs.Load()

	rep, err := n.ReplayCheck(ctx, r.ID, nil)
	if err != nil || !rep.Matches || rep.Divergence != nil || rep.Against != "live version 1" || rep.Steps != 1 {
		t.Fatalf("against the live version: %+v %v", rep, err)
	}
	if _, err := n.Deploy(ctx, bundle("greet", map[string]string{"main.star": "def main(input):\n    return {\"v\": 3, \"x\": test.echo(\"bye\")}\n"})); err != nil {
		t.Fatal(err)
	}
	rep, err = n.ReplayCheck(ctx, r.ID, nil)
	if err != nil || rep.Divergence == nil || rep.Against != "live version 2" || rep.Divergence.Journaled == nil || rep.Divergence.New == nil ||
		!strings.Contains(string(rep.Divergence.New.Args), "bye") || !strings.Contains(rep.Message, "non-determinism at step") {
		t.Fatalf("against a diverging version: %+v %v", rep, err)
	}
	pasted := &api.Script{Main: "fix.star", Files: map[string]string{"fix.star": greetV2}}
	rep, err = n.ReplayCheck(ctx, r.ID, pasted)
	if err != nil || rep.Divergence != nil || rep.Matches || rep.Against != "pasted script" || !strings.Contains(string(rep.Result), `"v":2`) {
		t.Fatalf("against a pasted script with another result: %+v %v", rep, err)
	}
	if execs.Load() != before {
		t.Fatalf("replay checks executed %d steps", execs.Load()-before)
	}
	var ce *api.CompileError
	if _, err := n.ReplayCheck(ctx, r.ID, &api.Script{Main: "x.star", Files: map[string]string{"x.star": "def main(:"}}); !errors.As(err, &ce) {
		t.Fatalf("a pasted script that does not compile: %v", err)
	}
	if _, err := n.ReplayCheck(ctx, r.ID, &api.Script{Main: "x.star"}); !errors.Is(err, api.ErrBadInput) {
		t.Fatalf("a pasted script without its main file: %v", err)
	}
	if _, err := n.ReplayCheck(ctx, "01NOSUCHRUN000000000000000", nil); !errors.Is(err, api.ErrUnknownRun) {
		t.Fatalf("an unknown run: %v", err)
	}
}

// TestScriptVersions: a run's own script version and a deployed version
// come with their sources; a version a script does not have is refused.
func TestScriptVersions(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	ctx := context.Background()
	for _, src := range []string{greetV1, greetV2} {
		if _, err := n.Deploy(ctx, bundle("greet", map[string]string{"main.star": src})); err != nil {
			t.Fatal(err)
		}
	}
	r, err := n.Start(ctx, api.StartRequest{Script: api.Script{Name: "greet"}})
	if err != nil {
		t.Fatal(err)
	}
	n.Wait(ctx, r.ID)
	sv, err := n.RunScript(ctx, r.ID)
	if err != nil || sv.Name != "greet" || sv.Version != 2 || sv.Sources["main.star"] != greetV2 || sv.Main != "main.star" {
		t.Fatalf("the run's script: %+v %v", sv, err)
	}
	v1, err := n.ScriptVersion(ctx, "greet", 1)
	if err != nil || v1.Version != 1 || v1.Sources["main.star"] != greetV1 {
		t.Fatalf("version 1: %+v %v", v1, err)
	}
	if _, err := n.ScriptVersion(ctx, "greet", 3); !errors.Is(err, api.ErrBadInput) || !strings.Contains(err.Error(), "versions are 1 to 2") {
		t.Fatalf("version 3: %v", err)
	}
	if _, err := n.ScriptVersion(ctx, "nope", 1); !errors.Is(err, api.ErrUnknownScript) {
		t.Fatalf("an unknown script: %v", err)
	}
	if _, err := n.RunScript(ctx, "01NOSUCHRUN000000000000000"); !errors.Is(err, api.ErrUnknownRun) {
		t.Fatalf("an unknown run: %v", err)
	}
}

// TestClusterEventsAndPlacements: nodes record their joins and, in their
// heartbeats, their latest placement decisions; a lost node's loss is
// recorded once, though every survivor notices it.
func TestClusterEventsAndPlacements(t *testing.T) {
	nodes := sharedNodes(t)
	ctx := context.Background()
	r := runScript(t, nodes[0], "def main(input):\n    return test.echo(1)\n", "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		events, err := nodes[1].ClusterEvents(ctx, 100)
		joined := map[string]bool{}
		for _, ev := range events {
			if ev.Kind == api.EventNodeJoined {
				joined[ev.Node] = true
			}
		}
		var placed []api.PlacementDecision
		infos, _ := nodes[2].Nodes(ctx)
		for _, info := range infos {
			if info.Name == "n1" {
				placed = info.Placements
			}
		}
		if err == nil && len(joined) == 3 && len(placed) > 0 && placed[0].Run == r.ID && placed[0].Builtin == "test.echo" && placed[0].Reason != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("joins %v (%v), n1's placements %+v", joined, err, placed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	nodes[2].Close(ctx)
	for deadline := time.Now().Add(20 * time.Second); ; {
		events, err := nodes[0].ClusterEvents(ctx, 100)
		var lost []api.ClusterEvent
		for _, ev := range events {
			if ev.Kind == api.EventNodeLost {
				lost = append(lost, ev)
			}
		}
		if err == nil && len(lost) > 0 {
			// Both survivors noticed by now (they check as often as each
			// other); the stream kept one.
			time.Sleep(time.Second)
			events, _ = nodes[0].ClusterEvents(ctx, 100)
			n := 0
			for _, ev := range events {
				if ev.Kind == api.EventNodeLost {
					n++
				}
			}
			if n != 1 || lost[0].Node != "n3" {
				t.Fatalf("%d losses recorded: %+v", n, events)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no loss recorded: %+v %v", events, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
