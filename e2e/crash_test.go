package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
)

// keyCounter is an HTTP server standing in for a third-party API: it counts
// requests per Idempotency-Key.
type keyCounter struct {
	mu     sync.Mutex
	counts map[string]int
	total  int
}

func (k *keyCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.counts[r.Header.Get("Idempotency-Key")]++
	k.total++
	k.mu.Unlock()
	time.Sleep(time.Millisecond) // the API's latency, so that steps are in flight at the kill
	fmt.Fprintf(w, `{"i": %s}`, r.URL.Query().Get("i"))
}

// check asserts that want distinct steps were executed, none more than twice,
// and at most maxAgain twice (steps in flight at a kill, re-executed with the
// same idempotency key). It returns how many ran twice and the request count.
func (k *keyCounter) check(t *testing.T, want, maxAgain int) (again, total int) {
	t.Helper()
	counts, total := k.snapshot()
	for key, n := range counts {
		if n > 2 {
			t.Errorf("step %s executed %d times", key, n)
		}
		if n == 2 {
			again++
		}
	}
	if len(counts) != want {
		t.Fatalf("%d distinct steps executed, want %d", len(counts), want)
	}
	if again > maxAgain { // at most one step per run can have been in flight
		t.Fatalf("%d steps executed twice; at most %d were in flight", again, maxAgain)
	}
	return again, total
}

func (k *keyCounter) snapshot() (map[string]int, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := make(map[string]int, len(k.counts))
	for key, n := range k.counts {
		c[key] = n
	}
	return c, k.total
}

// crashSetup starts a partner service that counts requests by idempotency
// key, and an engine on a fresh data dir.
func crashSetup(t *testing.T) (counter *keyCounter, partner *httptest.Server, dir string, eng *engineProc) {
	t.Helper()
	counter = &keyCounter{counts: map[string]int{}}
	partner = httptest.NewServer(counter)
	t.Cleanup(partner.Close)
	dir = t.TempDir()
	return counter, partner, dir, startEngine(t, dir)
}

// killAfter polls until the partner has had requests requests, then kills
// eng with SIGKILL and waits for it to be gone.
func killAfter(t *testing.T, ctx context.Context, counter *keyCounter, eng *engineProc, requests int) {
	t.Helper()
	for {
		_, total := counter.snapshot()
		if total >= requests {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the runs made no progress: %d requests of %d", total, requests)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	eng.cmd.Process.Kill() // SIGKILL
	eng.wait()
}

const crashScript = `
def main(input):
    total = 0
    for i in range(input["n"]):
        total += http.get(input["url"] + "/step?i=%d" % i).json["i"]
    return total
`

// TestSIGKILLLosesNoRun kills an engine with SIGKILL in the middle of runs and
// restarts it on the same data dir: every run completes, no step that had a
// journaled result is executed again, and a step caught in flight is executed
// again with the same idempotency key.
func TestSIGKILLLosesNoRun(t *testing.T) {
	counter, partner, dir, eng := crashSetup(t)
	c := client.New(eng.url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const runs, steps = 8, 40
	var ids []string
	for i := 0; i < runs; i++ {
		r, err := c.Start(ctx, api.StartRequest{
			Script: api.Script{Name: "crash", Main: "crash.star", Files: map[string]string{"crash.star": crashScript}},
			Input:  json.RawMessage(fmt.Sprintf(`{"n": %d, "url": %q}`, steps, partner.URL)),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	killAfter(t, ctx, counter, eng, runs*steps/3) // the runs well under way
	_, atKill := counter.snapshot()
	if atKill >= runs*steps {
		t.Fatalf("every step was done before the kill (%d requests): the test proves nothing", atKill)
	}

	eng2 := startEngine(t, dir)
	c2 := client.New(eng2.url)
	for _, id := range ids {
		end, err := c2.Wait(ctx, id)
		if err != nil {
			t.Fatalf("run %s: %v\n%s", id, err, eng2.logs)
		}
		if end.Status != api.StatusCompleted || string(end.Result) != "780" {
			t.Fatalf("run %s after recovery: %s %s %+v", id, end.Status, end.Result, end.Error)
		}
	}
	again, total := counter.check(t, runs*steps, runs)
	t.Logf("%d requests before the kill, %d in all; %d in-flight steps executed again with the same key", atKill, total, again)
}

// TestSIGKILLDuringTriggers kills an engine with SIGKILL while synchronous
// triggers run, some of scripts with an outside effect (a request to a
// partner) after side values, some of side values alone, and restarts it on
// the same data dir. A synchronous trigger's run is journaled only at its
// first output (output commit): so every request the partner received came
// from a run the restarted engine knows, and completes; and every run it
// knows ends.
func TestSIGKILLDuringTriggers(t *testing.T) {
	counter, partner, dir, eng := crashSetup(t)
	c := client.New(eng.url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for name, src := range map[string]string{
		"fx":   "def main(input):\n    t = time.now()\n    n = rand.int(10)\n    return http.get(input[\"url\"] + \"/step?i=1\").json[\"i\"] + n * 0\n",
		"side": "def main(input):\n    return [str(time.now()), uuid()]\n",
	} {
		if _, err := c.Deploy(ctx, api.DeployRequest{Script: api.Script{Name: name, Main: "main.star", Files: map[string]string{"main.star": src}}}); err != nil {
			t.Fatal(err)
		}
	}
	load, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	body := fmt.Sprintf(`{"url": %q}`, partner.URL)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; load.Err() == nil; i++ {
				name := []string{"fx", "side"}[(w+i)%2]
				req, _ := http.NewRequestWithContext(load, http.MethodPost, eng.url+"/v1/run/"+name, strings.NewReader(body))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	killAfter(t, ctx, counter, eng, 100) // runs with outside effects under way
	stopLoad()
	wg.Wait()

	eng2 := startEngine(t, dir)
	c2 := client.New(eng2.url)
	counts, _ := counter.snapshot()
	for key, n := range counts {
		run, _, _ := strings.Cut(key, "/")
		end, err := c2.Wait(ctx, run)
		if err != nil || end.Status != api.StatusCompleted {
			t.Fatalf("run %s made a request to the partner (%d times) but after the restart: %v %+v", run, n, err, end)
		}
		if n > 2 {
			t.Errorf("step %s executed %d times", key, n)
		}
	}
	runs, err := c2.List(ctx, api.ListFilter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	notStarted := 0
	for _, r := range runs {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		end, err := c2.Wait(wctx, r.ID)
		wcancel()
		if err != nil || !end.Done() {
			d, gerr := c2.Get(ctx, r.ID)
			var logs []string
			for _, l := range strings.Split(eng2.logs.String(), "\n") {
				if strings.Contains(l, r.ID) {
					logs = append(logs, l)
				}
			}
			t.Fatalf("run %s (%s), in the index after the restart, did not end: %v %+v\ndetail %v %+v\n%s", r.ID, r.Script, err, end, gerr, d, strings.Join(logs, "\n"))
		}
		if end.Status == api.StatusFailed && strings.Contains(end.Error.Message, "did not start") {
			notStarted++ // indexed as its start was journaled, when the node was killed
			continue
		}
		if d, err := c2.Get(ctx, r.ID); err != nil || len(d.Steps) == 0 || end.Status != api.StatusCompleted {
			t.Fatalf("run %s, in the index after the restart: %s, %v %+v", r.ID, end.Status, err, d)
		}
	}
	t.Logf("%d runs made a request to the partner; %d runs in the index after the restart, %d of them failed as not started", len(counts), len(runs), notStarted)
}
