package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	counter := &keyCounter{counts: map[string]int{}}
	partner := httptest.NewServer(counter)
	defer partner.Close()
	dir := t.TempDir()
	eng := startEngine(t, dir)
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
	for { // poll until the runs are well under way
		if _, total := counter.snapshot(); total >= runs*steps/3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("runs made no progress")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	eng.cmd.Process.Kill() // SIGKILL
	eng.wait()
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
