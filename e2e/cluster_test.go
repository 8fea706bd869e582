package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
)

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startCluster starts n engine processes whose embedded NATS servers route to
// each other, and returns them once each serves its API.
func startCluster(t testing.TB, n int, extra ...string) []*engineProc {
	t.Helper()
	return startClusterWith(t, n, func(int) []string { return extra })
}

// startClusterWith is startCluster with extra flags for node i (0-based).
func startClusterWith(t testing.TB, n int, extra func(i int) []string) []*engineProc {
	t.Helper()
	ports := freePorts(t, n)
	procs := make([]*engineProc, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range procs {
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		args := append([]string{"--name", fmt.Sprintf("n%d", i+1), "--cluster", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--peers", strings.Join(peers, ",")}, extra(i)...)
		dir := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i], errs[i] = launchEngine(t, dir, args...)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return procs
}

// TestClusterNodes: three engines form one cluster and every node sees all
// three, live, within a few heartbeats.
func TestClusterNodes(t *testing.T) {
	procs := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		nodes, err := client.New(procs[2].url).Nodes(ctx)
		if err == nil && len(nodes) == 3 {
			if nodes[0].Name != "n1" || nodes[2].Reading.Cores == 0 || nodes[1].HTTP == "" {
				t.Fatalf("nodes: %+v", nodes)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("never saw 3 nodes: %v %+v", err, nodes)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	waitNodes(t, ctx, procs[0].url, 3)
	out, errOut, code := ctl(t, []string{"DROVER_URL=" + procs[0].url}, "nodes")
	if code != 0 || strings.Count(out, "http://127.0.0.1:") != 3 {
		t.Fatalf("ctl nodes: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Log("\n" + out)
}

// spreadScript calls an API 12 times at once, then posts 3 reports.
const spreadScript = `
def call(url, i):
    return lambda: http.get(url + "/step?i=%d" % i).json["i"]

def main(input):
    calls = parallel([call(input["url"], i) for i in range(12)])
    reports = [http.post(input["url"] + "/report?i=%d" % i, json={"calls": calls}).json["i"] for i in range(8)]
    return {"calls": len(calls), "reports": len(reports)}
`

// TestStepsFollowResources: steps are placed by custom resources. Every node
// may call the API 4 times a second (a limit per source IP), so 12 calls
// started at once spread over the three nodes instead of queueing on one;
// only n3 declares the reports resource, so every report is posted from n3. Each
// step's node and the reason for it are in the run's record. Once n1 has
// measured http.post short, the reports go to n3 directly (package dispatch,
// between two engine processes): each is journaled by n1 as one entry, its
// call folded into its result.
func TestStepsFollowResources(t *testing.T) {
	counter := &keyCounter{counts: map[string]int{}}
	partner := httptest.NewServer(counter)
	defer partner.Close()
	procs := startClusterWith(t, 3, func(i int) []string {
		// A local POST is a fraction of a millisecond, but several under
		// the race detector on a loaded machine: fold below 50 ms.
		args := []string{"--resource", "partner=4/s,burst=4,builtin=http.get,host=127.0.0.1", "--fold-below", "50ms"}
		if i == 2 {
			args = append(args, "--resource", "reports=100/s,builtin=http.post")
		}
		return args
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitNodes(t, ctx, procs[0].url, 3)
	c := client.New(procs[0].url)
	waitResources(t, ctx, c, 3)
	r, err := c.Start(ctx, api.StartRequest{
		Script: api.Script{Name: "spread", Main: "spread.star", Files: map[string]string{"spread.star": spreadScript}},
		Input:  json.RawMessage(fmt.Sprintf(`{"url": %q}`, partner.URL)),
	})
	if err != nil {
		t.Fatal(err)
	}
	end, err := c.Wait(ctx, r.ID)
	if err != nil || end.Status != api.StatusCompleted {
		t.Fatalf("run: %v %+v", err, end)
	}
	d, err := c.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, s := range d.Steps {
		if s.Node == "" || s.Reason == "" {
			t.Fatalf("step %s has no node or reason: %+v", s.ID, s)
		}
		switch s.Builtin {
		case "http.get":
			calls[s.Node]++
		case "http.post":
			if s.Node != "n3" {
				t.Fatalf("step %s posted a report from %s, which lacks the reports resource (reason %q)", s.ID, s.Node, s.Reason)
			}
		}
	}
	for _, node := range []string{"n1", "n2", "n3"} {
		if calls[node] == 0 || calls[node] > 6 {
			t.Fatalf("API calls by node = %v, want them spread over n1, n2 and n3 by the per-node limit", calls)
		}
	}
	exp, err := c.Export(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	direct := 0
	for _, e := range exp.Journal {
		var res api.ResultEntry
		if e.Kind == api.EntryResult && json.Unmarshal(e.Data, &res) == nil && res.Call != nil && res.Call.Builtin == "http.post" {
			if res.Node != "n3" || res.Call.Node != "n3" {
				t.Fatalf("report %s sent directly ran on %s (call placed on %s)", res.Step, res.Node, res.Call.Node)
			}
			direct++
		}
	}
	if direct == 0 {
		t.Fatalf("no report was sent directly to n3 (http.post measured short after 3 of 8)")
	}
	out, _, code := ctl(t, []string{"DROVER_URL=" + procs[1].url}, "runs", "show", r.ID)
	if code != 0 || !strings.Contains(out, "n3") || !strings.Contains(out, "lacks reports") {
		t.Fatalf("ctl runs show: exit %d\n%s", code, out)
	}
	t.Logf("API calls by node: %v\n%s", calls, out)
}

// waitResources polls until every one of n nodes' readings carries its
// custom resources, so that placement sees them.
func waitResources(t *testing.T, ctx context.Context, c *client.Client, n int) {
	t.Helper()
	for {
		nodes, err := c.Nodes(ctx)
		ready := 0
		for _, nd := range nodes {
			if len(nd.Reading.Resources) > 0 {
				ready++
			}
		}
		if err == nil && ready == n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("resources never showed on %d nodes: %v", n, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}
