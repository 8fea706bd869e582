package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
)

// The control panel's performance targets (issue 13), measured in Debian's
// headless Chromium (e2e/browser/bench.mjs, playwright-core) against real
// engine processes, each beside its floor taken in the same run:
//
//	go test -run XXX -bench BenchmarkPanel -benchtime 1x ./e2e
//
// docs/benchmarks.md, "Control panel, in Chromium", has the figures.

// benchBrowser runs `node bench.mjs args...` and decodes the one line of
// JSON it prints into out. SIGTERM on timeout lets playwright close Chromium.
func benchBrowser(b *testing.B, node, chromium string, timeout time.Duration, out any, args ...string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"bench.mjs"}, args...)...)
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("node bench.mjs %s: %v\n%s\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	line := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, out); err != nil {
		b.Fatalf("bench.mjs printed no JSON (%v):\n%s\n%s", err, stdout.String(), stderr.String())
	}
}

// quantiles is bench.mjs's summary of a series of milliseconds.
type quantiles struct {
	N   int       `json:"n"`
	P50 float64   `json:"p50"`
	P99 float64   `json:"p99"`
	Max float64   `json:"max"`
	All []float64 `json:"all"` // in the order taken: the first load is a cold one
}

// String gives every figure in the order taken, in ms.
func (q quantiles) String() string {
	var b strings.Builder
	for i, x := range q.All {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.0f", x)
	}
	return b.String()
}

// quantile is the nearest-rank quantile q of xs (sorted in place).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := int(float64(len(xs))*q+0.999999) - 1
	return xs[max(0, min(len(xs)-1, i))]
}

// benchHTTP is a client that keeps a connection per seeding worker.
var benchHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}, Timeout: time.Minute}

// startRuns starts n runs of script on the node at url, from workers
// goroutines, and returns once every start is answered (not every run
// ended). attrs gives run i's attributes.
func startRuns(b *testing.B, url string, script api.Script, n, workers int, attrs func(i int) map[string]string) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				body, _ := json.Marshal(api.StartRequest{Script: script, Input: json.RawMessage(fmt.Sprint(i)), Attrs: attrs(i)})
				resp, err := benchHTTP.Post(url+"/v1/runs", "application/json", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				var reply bytes.Buffer
				reply.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("run %d: HTTP %d: %s", i, resp.StatusCode, reply.String())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// seedScript makes no step: a run is its start and end entries.
var seedScript = api.Script{Name: "seed", Main: "seed.star", Files: map[string]string{
	"seed.star": "def main(input):\n    return {\"n\": input}\n",
}}

// BenchmarkPanelRunsPage: the runs page's first render with 100,000 runs
// stored (target ≤ 300 ms from navigation start), beside its floor: the
// same API answer fetched and parsed in the same page. DROVER_PANEL_RUNS
// seeds another number (a quick try of the benchmark itself).
func BenchmarkPanelRunsPage(b *testing.B) {
	node, chromium := browserTools(b)
	runs := 100_000
	if v := os.Getenv("DROVER_PANEL_RUNS"); v != "" {
		fmt.Sscan(v, &runs)
	}
	eng, err := launchEngine(b, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	startRuns(b, eng.url, seedScript, runs, 64, func(i int) map[string]string {
		return map[string]string{"customer": fmt.Sprintf("c%d", i%100)}
	})
	seeded := time.Since(began)
	// The last runs started have ended once the newest run listed has.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		list, err := client.New(eng.url).List(ctx, api.ListFilter{Limit: 100})
		if err == nil && len(list) == 100 && !slices.ContainsFunc(list, func(r api.Run) bool { return !r.Done() }) {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("the seeded runs did not end: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	b.Logf("seeded %d runs in %s (%.0f runs/s)", runs, seeded.Round(time.Millisecond), float64(runs)/seeded.Seconds())

	var res struct {
		Contract bool      `json:"contract"`
		Rows     int       `json:"rows"`
		Ready    quantiles `json:"ready"`
		Painted  quantiles `json:"painted"`
		Floor    quantiles `json:"floor"`
		NavFloor quantiles `json:"nav_floor"`
		First    float64   `json:"browser_first"`
		PageAPI  quantiles `json:"page_api"`
		Parts    struct {
			HTML, DCL, API quantiles
		} `json:"parts"`
		Chromium string `json:"chromium"`
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchBrowser(b, node, chromium, 5*time.Minute, &res, "runs", eng.url, "20")
	}
	b.StopTimer()
	if !res.Contract {
		b.Logf("the runs page never set main[data-page=runs][data-ready=\"1\"]: figures are to its rows in the DOM")
	}
	b.Logf("Chromium %s, %d loads, %d rows: first render p50 %.1f ms p99 %.1f ms (ready in the DOM p50 %.1f ms); floor (fetch+parse of /v1/runs?limit=100) p50 %.1f ms p99 %.1f ms; the page's own request p50 %.1f ms",
		res.Chromium, res.Painted.N, res.Rows, res.Painted.P50, res.Painted.P99, res.Ready.P50, res.Floor.P50, res.Floor.P99, res.PageAPI.P50)
	b.Logf("navigation floor (the same API answer loaded as a document, to its load event) p50 %.1f ms p99 %.1f ms; the page's load, p50 from its start: HTML %.1f ms, modules run (DOMContentLoaded) %.1f ms, runs answered %.1f ms",
		res.NavFloor.P50, res.NavFloor.P99, res.Parts.HTML.P50, res.Parts.DCL.P50, res.Parts.API.P50)
	b.Logf("each load's first render in ms, in order (the first: the panel's first visit, its assets in no cache; the browser's own first navigation before it took %.0f ms): %v", res.First, res.Painted)
	b.ReportMetric(float64(runs), "runs")
	b.ReportMetric(float64(runs)/seeded.Seconds(), "seed-runs/s")
	b.ReportMetric(res.Painted.P50, "ms-render-p50")
	b.ReportMetric(res.Painted.P99, "ms-render-p99")
	b.ReportMetric(res.Floor.P50, "ms-floor-p50")
	b.ReportMetric(res.Floor.P99, "ms-floor-p99")
	b.ReportMetric(res.Painted.P50/res.Floor.P50, "x-floor-p50")
	b.ReportMetric(res.NavFloor.P50, "ms-nav-floor-p50")
	b.ReportMetric(res.NavFloor.P99, "ms-nav-floor-p99")
	b.ReportMetric(res.Painted.P50/res.NavFloor.P50, "x-nav-floor-p50")
}

// BenchmarkPanelBigRun: the page of a run of 10,000 steps, interactive
// (target ≤ 1 s from navigation start to its first draw), then a click on a
// step's row until its details are on screen; the floor is the same API
// answer fetched and parsed in the same page.
func BenchmarkPanelBigRun(b *testing.B) {
	node, chromium := browserTools(b)
	const steps = 10_000
	eng, err := launchEngine(b, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := client.New(eng.url)
	run, err := c.Start(ctx, api.StartRequest{Script: api.Script{Name: "big", Main: "big.star", Files: map[string]string{
		"big.star": "def main(input):\n    for i in range(input):\n        time.now()\n    return input\n",
	}}, Input: json.RawMessage(fmt.Sprint(steps))})
	if err != nil {
		b.Fatal(err)
	}
	if run, err = c.Wait(ctx, run.ID); err != nil || run.Status != api.StatusCompleted {
		b.Fatalf("the %d-step run: %v %+v", steps, err, run)
	}
	var res struct {
		Contract bool      `json:"contract"`
		Bars     any       `json:"bars"`
		Ready    quantiles `json:"ready"`
		Painted  quantiles `json:"painted"`
		Click    quantiles `json:"click"`
		Floor    quantiles `json:"floor"`
		PageAPI  quantiles `json:"page_api"`
		First    float64   `json:"browser_first"`
		Chromium string    `json:"chromium"`
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchBrowser(b, node, chromium, 10*time.Minute, &res, "run", eng.url, run.ID, "10")
	}
	b.StopTimer()
	if !res.Contract {
		b.Logf("the run page never set main[data-page=run][data-ready=\"1\"]: figures are to its bars in the DOM")
	}
	b.Logf("Chromium %s, %d loads, bars %v: interactive p50 %.1f ms p99 %.1f ms (ready in the DOM p50 %.1f ms); click → details p50 %.1f ms p99 %.1f ms; floor (fetch+JSON.parse of the run) p50 %.1f ms p99 %.1f ms; the page's own request p50 %.1f ms",
		res.Chromium, res.Painted.N, res.Bars, res.Painted.P50, res.Painted.P99, res.Ready.P50, res.Click.P50, res.Click.P99, res.Floor.P50, res.Floor.P99, res.PageAPI.P50)
	b.Logf("each load's time to interactive in ms, in order (the first: the panel's first visit, its assets in no cache; the browser's own first navigation before it took %.0f ms): %v", res.First, res.Painted)
	b.ReportMetric(res.Painted.P50, "ms-ready-p50")
	b.ReportMetric(res.Painted.P99, "ms-ready-p99")
	b.ReportMetric(res.Click.P50, "ms-click-p50")
	b.ReportMetric(res.Click.P99, "ms-click-p99")
	b.ReportMetric(res.Floor.P50, "ms-floor-p50")
	b.ReportMetric(res.Floor.P99, "ms-floor-p99")
	b.ReportMetric(res.Painted.P50/res.Floor.P50, "x-floor-p50")
}

// liveScript waits at its gate (an http.get the benchmark answers once the
// page is open and observed), then makes input["n"] steps a little apart:
// time.now (a co-located step: its call is journaled with its result) and
// sleep("20ms") (its call first, its result when it wakes).
const liveScript = `def main(input):
    http.get(input["gate"], timeout = "300s")
    for i in range(input["n"]):
        time.now()
        sleep("20ms")
    return input["n"]
`

// BenchmarkPanelLiveEntry: a run coordinated by n1 of a 3-node cluster
// makes steps while its page is open on n2; each step's first element in
// the page is compared with its call entry's time (target p99 ≤ 200 ms).
// The floor: the same entries through a bare EventSource on n2 in the
// same page, drawing nothing.
func BenchmarkPanelLiveEntry(b *testing.B) {
	node, chromium := browserTools(b)
	const loops = 200 // 400 steps: time.now and sleep("20ms"), about 10 s
	procs := startCluster(b, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, p := range procs {
		for {
			nodes, err := client.New(p.url).Nodes(ctx)
			if err == nil && len(nodes) == 3 {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("%s never saw 3 nodes: %v", p.url, err)
			}
			time.Sleep(50 * time.Millisecond) // polling interval
		}
	}
	// The gate: bench.mjs opens it (GET /open) once the page is observed.
	open := make(chan struct{}, 1)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/open" {
			open <- struct{}{}
			return
		}
		select {
		case <-open:
		case <-r.Context().Done():
		}
	}))
	defer gate.Close()
	a, other := client.New(procs[0].url), procs[1].url
	var page, floor, alone, goDelivery []float64
	var long []float64 // the page's tasks over 50 ms
	var measured, missing int
	// $DROVER_PANEL_TRACE names a file for each step's delays, to tell a
	// backlog (delays falling step after step) from a steady delay.
	var trace bytes.Buffer
	trace.WriteString("step,builtin,called_ms,page_ms,floor_ms,alone_ms,go_ms\n")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		input, _ := json.Marshal(map[string]any{"gate": gate.URL + "/wait", "n": loops})
		run, err := a.Start(ctx, api.StartRequest{Script: api.Script{Name: "live", Main: "live.star", Files: map[string]string{"live.star": liveScript}},
			Input: input})
		if err != nil {
			b.Fatal(err)
		}
		// A Go follower of the same events on n2, beside the page: the
		// engine's delivery alone, without the browser.
		goFloor := map[string]time.Time{}
		var goEvents int
		followed := make(chan error, 1)
		go func() {
			followed <- client.New(other).Events(ctx, run.ID, func(e api.Event) bool {
				now := time.Now()
				goEvents++
				var d struct {
					Step string `json:"step"`
				}
				if (e.Kind == "call" || e.Kind == "result") && json.Unmarshal(e.Data, &d) == nil && d.Step != "" {
					if _, ok := goFloor[d.Step]; !ok {
						goFloor[d.Step] = now
					}
				}
				return true
			})
		}()
		var res struct {
			Installed int64            `json:"installed"`
			Appeared  map[string]int64 `json:"appeared"`
			Received  map[string]int64 `json:"received"`
			Other     map[string]int64 `json:"other"`
			Long      []float64        `json:"long"`
			Events    string           `json:"events"`
			Errors    []string         `json:"errors"`
			Before    int              `json:"before"`
		}
		benchBrowser(b, node, chromium, 5*time.Minute, &res, "live", other, run.ID, gate.URL+"/open")
		if err := <-followed; err != nil {
			b.Fatalf("following the run on n2: %v", err)
		}
		d, err := a.Get(ctx, run.ID)
		if err != nil || d.Status != api.StatusCompleted || d.Coordinator != "n1" {
			b.Fatalf("the live run: %v, %s on %s", err, d.Status, d.Coordinator)
		}
		b.Logf("run %s: %d steps, %d drawn before the observer, %d appeared, %d received; the page applied %s events, the Go follower got %d", run.ID, len(d.Steps), res.Before, len(res.Appeared), len(res.Received), res.Events, goEvents)
		long = append(long, res.Long...)
		if len(res.Errors) > 0 {
			b.Logf("errors in the page: %q", res.Errors)
		}
		for _, s := range d.Steps {
			called := float64(s.Called.UnixNano()) / 1e6
			if s.Builtin == "http.get" || s.Called.IsZero() || called < float64(res.Installed) {
				continue // the gate, drawn in the page's first draw, not live
			}
			seen, ok := res.Appeared[s.ID]
			got, ok2 := res.Received[s.ID]
			if !ok || !ok2 {
				missing++
				continue
			}
			measured++
			fmt.Fprintf(&trace, "%s,%s,%.3f,%.0f,%.0f,%.0f,%.1f\n", s.ID, s.Builtin, called, float64(seen)-called, float64(got)-called, float64(res.Other[s.ID])-called, float64(goFloor[s.ID].UnixNano())/1e6-called)
			page = append(page, float64(seen)-called)
			floor = append(floor, float64(got)-called)
			if t, ok := res.Other[s.ID]; ok {
				alone = append(alone, float64(t)-called)
			}
			if t, ok := goFloor[s.ID]; ok {
				goDelivery = append(goDelivery, float64(t.UnixNano())/1e6-called)
			}
		}
	}
	b.StopTimer()
	if f := os.Getenv("DROVER_PANEL_TRACE"); f != "" {
		if err := os.WriteFile(f, trace.Bytes(), 0o644); err != nil {
			b.Error(err)
		}
	}
	if measured == 0 {
		b.Fatalf("no step appeared live in the page (%d missing)", missing)
	}
	if missing > 0 {
		b.Errorf("%d steps journaled after the page opened never appeared in it (or never reached its EventSource)", missing)
	}
	p50, p99, pmax := quantile(page, 0.5), quantile(page, 0.99), quantile(page, 1)
	f50, f99, fmax := quantile(floor, 0.5), quantile(floor, 0.99), quantile(floor, 1)
	g50, g99, gmax := quantile(goDelivery, 0.5), quantile(goDelivery, 0.99), quantile(goDelivery, 1)
	a50, a99, amax := quantile(alone, 0.5), quantile(alone, 0.99), quantile(alone, 1)
	var busy float64
	for _, d := range long {
		busy += d
	}
	b.Logf("an EventSource in a page of its own: p50 %.0f ms p99 %.0f ms max %.0f ms; the panel page's tasks over 50 ms: %d, %.0f ms in all, longest %.0f ms",
		a50, a99, amax, len(long), busy, quantile(long, 1))
	b.Logf("%d steps live on n2 (coordinated by n1): page p50 %.0f ms p99 %.0f ms max %.0f ms; bare EventSource p50 %.0f ms p99 %.0f ms max %.0f ms; Go follower p50 %.1f ms p99 %.1f ms max %.1f ms",
		measured, p50, p99, pmax, f50, f99, fmax, g50, g99, gmax)
	b.ReportMetric(float64(measured), "steps")
	b.ReportMetric(p50, "ms-page-p50")
	b.ReportMetric(p99, "ms-page-p99")
	b.ReportMetric(pmax, "ms-page-max")
	b.ReportMetric(f50, "ms-floor-p50")
	b.ReportMetric(f99, "ms-floor-p99")
	b.ReportMetric(fmax, "ms-floor-max")
	b.ReportMetric(a50, "ms-alone-p50")
	b.ReportMetric(a99, "ms-alone-p99")
	b.ReportMetric(g50, "ms-go-p50")
	b.ReportMetric(g99, "ms-go-p99")
	b.ReportMetric(p99/max(f99, 1), "x-floor-p99")
}
