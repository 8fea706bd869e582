package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
)

// clusterOrderScript is the script TestPanelCluster deploys, in two versions
// (VERSION differs). Only n2 declares a resource bound to kv.put and only n3
// one bound to kv.get, so a run coordinated by n1 has steps on all three
// nodes: time.now on n1 (local), kv.put on n2, kv.get on n3. With "until"
// the run goes on making steps, a short sleep (in memory, on the
// coordinator) and a kv.get on n3, until a run with "stop" set to the same
// name stops it; with "wait" it ends in a long, parked sleep.
const clusterOrderScript = `# The panel cluster test's order: kept on n2, read back on n3.
def main(input):
    customer = input["customer"]
    tag(customer = customer)
    if input.get("stop"):
        kv.put("stop/" + input["stop"], True)
        return {"stopped": input["stop"]}
    log.info("order for " + customer, order = input["order"])
    at = time.now()
    kv.put("order/" + customer, input["order"])
    got = kv.get("order/" + customer)
    if input.get("until"):
        for i in range(300):
            sleep("300ms")
            if kv.get("stop/" + input["until"]):
                break
    if input.get("wait"):
        sleep(input["wait"])
    return {"order": got, "version": "VERSION"}
`

// clusterNode is one engine of TestPanelCluster's cluster, with what it
// takes to start it again as the same node: name, data dir, ports.
type clusterNode struct {
	name string
	dir  string
	args []string
	proc *engineProc
}

// start (re)starts the node's engine; any goroutine may call it.
func (n *clusterNode) start(t testing.TB) error {
	p, err := launchEngine(t, n.dir, n.args...)
	if err != nil {
		return err
	}
	n.proc = p
	return nil
}

// startPanelCluster starts three engines, n1 to n3, on fixed loopback ports
// (HTTP and routes) picked free, so that a node killed can come back at the
// same address: n2 declares a resource bound to kv.put, n3 one bound to
// kv.get. It returns once every node serves its API.
func startPanelCluster(t *testing.T) []*clusterNode {
	t.Helper()
	ports := freePorts(t, 6) // 3 route ports, 3 HTTP ports
	extra := [][]string{nil, {"--resource", "n2_store=1000/s,builtin=kv.put"}, {"--resource", "n3_store=1000/s,builtin=kv.get"}}
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		var peers []string
		for j := 0; j < 3; j++ {
			if j != i {
				peers = append(peers, fmt.Sprintf("nats://127.0.0.1:%d", ports[j]))
			}
		}
		name := fmt.Sprintf("n%d", i+1)
		args := append([]string{"--name", name, "--cluster", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--peers", strings.Join(peers, ","),
			"--http", fmt.Sprintf("127.0.0.1:%d", ports[3+i])}, extra[i]...)
		nodes[i] = &clusterNode{name: name, dir: t.TempDir(), args: args}
	}
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.start(t)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// waitPlacementView polls coordinator url until its view of the cluster
// holds 3 nodes, n2's kv.put resource and n3's kv.get one.
func waitPlacementView(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	for {
		nodes, err := client.New(url).Nodes(ctx)
		has := map[string]bool{}
		for _, nd := range nodes {
			for r := range nd.Reading.Resources {
				has[nd.Name+"/"+r] = true
			}
		}
		if err == nil && len(nodes) == 3 && has["n2/n2_store"] && has["n3/n3_store"] {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never saw 3 nodes with n2_store on n2 and n3_store on n3: %v %+v", url, err, nodes)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// deathReport is what cluster.mjs reports of the run it watched while the
// node it came from was killed and restarted.
type deathReport struct {
	Run        string          `json:"run"`
	Events     int             `json:"events"`      // main.dataset.events: journal events applied
	LastID     uint64          `json:"lastEventId"` // main.dataset.lastEventId
	Bars       []string        `json:"bars"`        // the step ids of the timeline's bars
	Rows       int             `json:"rows"`        // the steps table's rows
	Received   []uint64        `json:"received"`    // every event id the page's EventSources received, in order
	Sources    int             `json:"sources"`     // EventSources the page opened
	Requests   []streamRequest `json:"requests"`    // the page's requests for the run's stream
	BeforeKill int             `json:"beforeKill"`  // events applied when n1 was killed
}

// streamRequest is one request of a page for a run's event stream.
type streamRequest struct {
	At          int64   `json:"at"`          // ms after n1 was killed
	LastEventID *string `json:"lastEventId"` // "" when none was sent; nil when not known (it failed to connect)
	Status      int     `json:"status"`      // its answer's HTTP status, 0 for none
	Failure     string  `json:"failure"`     // how it failed or ended early: "net::ERR_CONNECTION_REFUSED", ...
}

func (r streamRequest) String() string {
	id := "not known"
	if r.LastEventID != nil {
		id = fmt.Sprintf("%q", *r.LastEventID)
	}
	s := fmt.Sprintf("%+.1fs Last-Event-ID %s: HTTP %d", float64(r.At)/1000, id, r.Status)
	if r.Failure != "" {
		s += ", then " + r.Failure
	}
	return s
}

// panelAllRows is the most steps whose run page's table has every row
// (panel/assets/run.js ALL_ROWS); past it the table draws the rows in view.
const panelAllRows = 40

// TestPanelCluster drives the control panel of n1 in a real 3-node cluster
// in Debian's headless Chromium (e2e/browser/cluster.mjs, playwright-core):
// runs of two customers with steps placed on n1, n2 and n3, the runs
// filtered to one customer, a run's steps on their nodes' lanes (as GET
// /v1/runs/{id} places them), a step's details, steps appearing live, a run
// cancelled with a reason, a replay check against a changed script shown side
// by side, the nodes with their placement decisions, and a script's diff.
// Then the node the panel came from dies: with a run coordinated by n2
// making steps, n1 is SIGKILLed while its page follows the run; the page
// must say n1 is unreachable and, once n1 is back (same name, data dir and
// ports), show every step once and the run's end, having applied each of
// the journal's events exactly once. Screenshots go to $DROVER_SHOTS
// (default: the test's temporary directory).
func TestPanelCluster(t *testing.T) {
	node, chromium := browserTools(t)
	shots := shotsDir(t)
	began := time.Now()
	nodes := startPanelCluster(t)
	n1, n2 := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitPlacementView(t, ctx, n1.proc.url)
	waitPlacementView(t, ctx, n2.proc.url)

	env := []string{"DROVER_URL=" + n1.proc.url}
	src := filepath.Join(t.TempDir(), "order.star")
	for _, v := range []string{"one", "two"} {
		if err := os.WriteFile(src, []byte(strings.Replace(clusterOrderScript, "VERSION", v, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := ctl(t, env, "deploy", "order", src); code != 0 {
			t.Fatalf("deploy order (%s): exit %d\n%s", v, code, errOut)
		}
	}
	run := func(input string, detach bool) string {
		t.Helper()
		args := []string{"run", "order", "--input", input}
		if detach {
			args = append(args, "--detach")
		}
		out, errOut, code := ctl(t, env, args...)
		if code != 0 {
			t.Fatalf("run %s: exit %d\n%s", input, code, errOut)
		}
		if detach {
			return strings.TrimSpace(out)
		}
		return runIDFrom(t, errOut)
	}
	acme := run(`{"customer": "acme", "order": 1}`, false)
	globex := run(`{"customer": "globex", "order": 2}`, false)
	acme2 := run(`{"customer": "acme", "order": 3}`, false)
	parked := run(`{"customer": "globex", "order": 5, "wait": "1h"}`, true)

	// The placement the panel must show: n1's step, n2's and n3's.
	c1 := client.New(n1.proc.url)
	d, err := c1.Get(ctx, acme)
	if err != nil {
		t.Fatal(err)
	}
	on := map[string]string{}
	for _, s := range d.Steps {
		on[s.Builtin] = s.Node
	}
	if on["time.now"] != "n1" || on["kv.put"] != "n2" || on["kv.get"] != "n3" {
		t.Fatalf("run %s's steps were placed %v: want time.now on n1, kv.put on n2, kv.get on n3", acme, on)
	}

	cfg, _ := json.Marshal(map[string]any{
		"n1": n1.proc.url, "n2": n2.proc.url, "shots": shots,
		"acme": []string{acme, acme2}, "globex": globex, "parked": parked,
	})
	cmd := exec.Command(node, "cluster.mjs", string(cfg))
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out syncBuffer
	cmd.Stderr = &out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait := sync.OnceValue(cmd.Wait) // after the last read of stdout, or at cleanup
	t.Cleanup(func() { cmd.Process.Kill(); wait() })
	// The browser's script says when to kill n1 and when to start it again,
	// and reports what its page applied.
	var report *deathReport
	var killedAt, backAt time.Time
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		out.Write([]byte(line + "\n"))
		switch {
		case line == "drover: kill n1":
			n1.proc.cmd.Process.Kill() // SIGKILL
			n1.proc.wait()
			killedAt = time.Now()
		case line == "drover: restart n1":
			if err := n1.start(t); err != nil {
				t.Fatalf("n1 did not come back: %v\n%s", err, &out)
			}
			backAt = time.Now()
			out.Write([]byte(fmt.Sprintf("(n1 serves again %s after the kill, at %s)\n", backAt.Sub(killedAt).Round(time.Millisecond), n1.proc.url)))
		case strings.HasPrefix(line, "drover: death "):
			report = &deathReport{}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "drover: death ")), report); err != nil {
				t.Fatalf("bad report %q: %v", line, err)
			}
		}
	}
	io.Copy(io.Discard, stdout)
	err = wait()
	if err != nil {
		t.Fatalf("the panel of a 3-node cluster in Chromium: %v\n%s\nscreenshots in %s\nn1:\n%s", err, &out, shots, lastLines(n1.proc.logs.String(), 40))
	}
	if report == nil {
		t.Fatalf("cluster.mjs reported nothing of the node's death:\n%s", &out)
	}

	// The journal, read from n2 after the run's end, against what n1's page applied.
	var ids []uint64
	kinds := map[string]int{}
	ectx, ecancel := context.WithTimeout(ctx, 30*time.Second)
	defer ecancel()
	if err := client.New(n2.proc.url).Events(ectx, report.Run, func(e api.Event) bool {
		ids = append(ids, e.ID)
		kinds[string(e.Kind)]++
		return true
	}); err != nil {
		t.Fatalf("events of %s: %v", report.Run, err)
	}
	dd, err := client.New(n2.proc.url).Get(ctx, report.Run)
	if err != nil {
		t.Fatal(err)
	}
	if dd.Status != api.StatusCompleted {
		t.Fatalf("run %s: %s", report.Run, dd.Status)
	}
	if report.Events != len(ids) || report.LastID != ids[len(ids)-1] {
		t.Errorf("n1's page applied %d events up to id %d; the journal has %d up to id %d (%v): events lost or applied twice",
			report.Events, report.LastID, len(ids), ids[len(ids)-1], kinds)
	}
	bars := map[string]int{}
	for _, b := range report.Bars {
		bars[b]++
	}
	for _, s := range dd.Steps {
		if bars[s.ID] != 1 {
			t.Errorf("step %s (%s on %s) has %d bars on the page, want 1", s.ID, s.Builtin, s.Node, bars[s.ID])
		}
	}
	// The table has a row per step up to panelAllRows steps; past them, the
	// rows in view (virtualised).
	rowsOK := report.Rows == len(dd.Steps)
	if len(dd.Steps) > panelAllRows {
		rowsOK = report.Rows > 0 && report.Rows < len(dd.Steps)
	}
	if len(bars) != len(dd.Steps) || !rowsOK {
		t.Errorf("the page shows %d steps' bars and %d rows; the run has %d steps", len(bars), report.Rows, len(dd.Steps))
	}
	// What the page's streams received: a stream reconnected with
	// Last-Event-ID starts after it, so no id comes twice before the end.
	end := ids[len(ids)-1]
	seen, again, afterEnd := map[uint64]bool{}, 0, 0
	for _, id := range report.Received {
		switch {
		case seen[end]:
			afterEnd++
		case seen[id]:
			again++
		}
		seen[id] = true
	}
	t.Logf("%s\nscreenshots in %s", &out, filepath.Clean(shots))
	t.Logf("node death: run %s, %d journal events (%v); the page applied %d (%d before the kill); its streams received %d events, %d of them again before the end and %d after it, over %d EventSources; its requests for the stream (time from the kill): %v; n1 back %s after the kill; whole test %s",
		report.Run, len(ids), kinds, report.Events, report.BeforeKill, len(report.Received), again, afterEnd, report.Sources, report.Requests,
		backAt.Sub(killedAt).Round(time.Millisecond), time.Since(began).Round(time.Second))
	resumed := false
	for _, r := range report.Requests {
		resumed = resumed || (r.At > 0 && r.LastEventID != nil && *r.LastEventID != "" && r.Status == 200)
	}
	if afterEnd > 0 {
		// run.js: on the end event it reads GET /v1/runs/{id} again; when that
		// record still says running (the index lags the journal's end entry)
		// it follows the run again with a new EventSource, from the start.
		t.Logf("PANEL: after the run's end the page opened its stream again without Last-Event-ID and received %d events again (skipped, being applied already): the record it read after the end still said running", afterEnd)
	}
	if again > 0 {
		t.Errorf("the page's streams received %d events twice (the page skipped them, but its stream did not go on after its Last-Event-ID): requests %v, %d EventSources",
			again, report.Requests, report.Sources)
	}
	if !resumed {
		t.Errorf("no request of the page for the stream after the kill sent Last-Event-ID and was answered 200: %v", report.Requests)
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
