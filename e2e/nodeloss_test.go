package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
)

// TestNodeLossUnderLoad runs a 3-node cluster under load, SIGKILLs one node,
// and checks that the others drop it within a few seconds, adopt the runs it
// coordinated and re-place the steps it was executing: every run completes,
// none is lost, and no step that had a journaled result is executed again.
//
// The runs are spread over 3 journal partitions (--partitions 3), whose
// leaders are spread over the nodes, so the kill usually takes one away.
//
// It takes 10 to 50 s (JetStream leader elections after the kill).
func TestNodeLossUnderLoad(t *testing.T) {
	counter := &keyCounter{counts: map[string]int{}}
	partner := httptest.NewServer(counter)
	defer partner.Close()
	procs := startCluster(t, 3, "--log-level", "debug", "--partitions", "3") // debug: every step, in the logs printed on failure; runs spread over 3 journal partitions
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	waitNodes(t, ctx, procs[0].url, 3)

	const runs, steps = 12, 30
	var ids []string
	for i := 0; i < runs; i++ { // coordinators: n1, n2, n3 in turn
		r, err := client.New(procs[i%3].url).Start(ctx, api.StartRequest{
			Script: api.Script{Name: "load", Main: "load.star", Files: map[string]string{"load.star": crashScript}},
			Input:  json.RawMessage(fmt.Sprintf(`{"n": %d, "url": %q}`, steps, partner.URL)),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for {
		if _, total := counter.snapshot(); total >= runs*steps/3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no progress")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	victim := procs[2]
	victim.cmd.Process.Kill() // SIGKILL n3
	killed := time.Now()
	victim.wait()
	_, atKill := counter.snapshot()

	survivor := client.New(procs[0].url)
	waitNodes(t, ctx, procs[0].url, 2)
	dropped := time.Since(killed)

	for _, id := range ids {
		end, err := survivor.Wait(ctx, id)
		if err != nil {
			t.Fatalf("run %s: %v\nn1:\n%s\nn2:\n%s\nn3 (killed):\n%s", id, err, procs[0].logs, procs[1].logs, victim.logs)
		}
		if end.Status != api.StatusCompleted || string(end.Result) != "435" {
			t.Fatalf("run %s: %s %s %+v", id, end.Status, end.Result, end.Error)
		}
	}
	// Steps placed again (their node was lost, or their run adopted while
	// they were under way) show each placement, numbered, one of them where
	// they ran: usually the last, but a lost node's result can be committed
	// after the step was placed again, and the first result journaled stands.
	placedAgain, shown := 0, false
	for _, id := range ids {
		d, err := survivor.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range d.Steps {
			if len(st.Placements) == 0 {
				continue
			}
			placedAgain++
			last := st.Placements[len(st.Placements)-1]
			ranOn := false
			for _, p := range st.Placements {
				ranOn = ranOn || p.Node == st.Node
			}
			if st.Placements[0].Attempt != 1 || last.Attempt != len(st.Placements) || !ranOn || last.Why == "" {
				t.Errorf("run %s step %s: placements %+v, executed on %s", id, st.ID, st.Placements, st.Node)
			}
		}
		if placedAgain > 0 && !shown { // as a user sees it
			shown = true
			if out, _, code := ctl(t, []string{"DROVER_URL=" + procs[0].url}, "runs", "show", id); code != 0 || !strings.Contains(out, "placement 2 of ") {
				t.Errorf("ctl runs show %s (exit %d) shows no placement rows:\n%s", id, code, out)
			}
		}
	}
	twice, total := counter.check(t, runs*steps, runs)
	if dropped > 3*time.Second {
		t.Errorf("the lost node was dropped %s after the kill", dropped)
	}
	t.Logf("node dropped %s after SIGKILL; %d requests before the kill, %d in all; %d in-flight steps executed again with the same key; %d steps placed again", dropped.Round(time.Millisecond), atKill, total, twice, placedAgain)
}

// waitNodes polls a node's /v1/nodes until it lists want nodes.
func waitNodes(t *testing.T, ctx context.Context, url string, want int) {
	t.Helper()
	for {
		nodes, err := client.New(url).Nodes(ctx)
		if err == nil && len(nodes) == want {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("never saw %d nodes: %v %d", want, err, len(nodes))
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}
