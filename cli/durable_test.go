package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/cli"
	"github.com/droverhq/drover/engine"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/replay"
)

// outside is an HTTP server standing in for the outside world: it counts the
// requests it gets.
func outside(t *testing.T) (url string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"sku": "apple", "qty": 2, "note": "<fragile> & dry"}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

// orderRun runs testdata/order.star on an embedded node and returns its id and
// the result ctl printed. The URL has a query with & and <, which JSON
// encoders like to escape.
func orderRun(t *testing.T, url string) (id, stdout string) {
	t.Helper()
	in, _ := json.Marshal(map[string]string{"url": url + "/orders/7?a=1&b=<2>", "id": "7"})
	r := ctl(t, "run", "testdata/order.star", "--input", string(in))
	if r.code != 0 {
		t.Fatalf("run:\n%v", r)
	}
	return runID(t, r), r.stdout
}

func TestReplay(t *testing.T) {
	isolate(t)
	url, calls := outside(t)
	id, want := orderRun(t, url)
	if calls.Load() != 1 {
		t.Fatalf("the run made %d outside calls, want 1", calls.Load())
	}

	r := ctl(t, "replay", id)
	if r.code != cli.ExitOK || r.stdout != want {
		t.Fatalf("replay: want the run's result %q\n%v", want, r)
	}
	summary := regexp.MustCompile(`^replayed 3 of 3 steps in \S+ \(run ` + id + `, version [0-9a-f]{12}\): same result as the original run\n$`)
	if !summary.MatchString(r.stderr) {
		t.Errorf("stderr = %q, want a summary like %s", r.stderr, summary)
	}

	r = ctl(t, "replay", id, "--json")
	var rep replay.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("--json: %v\n%v", err, r)
	}
	if !rep.Matches || rep.Partial || rep.Steps != 3 || rep.Journaled != 3 || rep.Run.ID != id || rep.Divergence != nil || rep.Script != "order" {
		t.Errorf("report = %+v", rep)
	}
	if calls.Load() != 1 {
		t.Errorf("replays made %d outside calls, want none", calls.Load()-1)
	}

	t.Run("server", func(t *testing.T) {
		_, srv := serve(t)
		in, _ := json.Marshal(map[string]string{"url": url + "/orders/8?a=1&b=<2>", "id": "8"})
		r := ctl(t, "--server", srv, "run", "testdata/order.star", "--input", string(in))
		if r.code != 0 {
			t.Fatalf("run:\n%v", r)
		}
		before := calls.Load()
		want := r.stdout
		if r = ctl(t, "--server", srv, "replay", runID(t, r)); r.code != 0 || r.stdout != want || calls.Load() != before {
			t.Fatalf("replay (%d outside calls):\n%v", calls.Load()-before, r)
		}
	})
}

func TestReplayFailedRun(t *testing.T) {
	isolate(t)
	r := ctl(t, "run", "testdata/boom.star")
	id := runID(t, r)
	r = ctl(t, "replay", id)
	if r.code != cli.ExitFailure || r.stdout != "" {
		t.Fatalf("%v", r)
	}
	for _, want := range []string{"replayed 0 of 0 steps", "same error as the original run\n", "run " + id + " failed: fail: boom\n", "boom.star:3:9: in check"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestReplayDivergence(t *testing.T) {
	isolate(t)
	url, calls := outside(t)
	id, _ := orderRun(t, url)
	tests := []struct {
		name, script string
		want         []string
	}{
		{"changed arguments", "args.star", []string{
			"replay diverged: non-determinism at step 2: the script now makes a different call than the journal holds\n",
			`journaled: kv.put({"key":"order/7",`, "at order.star:5:11\n",
			`new:       kv.put({"key":"orders/7",`, "at args.star:4:11\n"}},
		{"fewer steps", "fewer.star", []string{
			"replay diverged: non-determinism at step 3: the script ended without making 1 journaled call(s) (fewer steps than the original run)\n",
			"journaled: uuid(null) at order.star:6:"}},
		{"more steps", "more.star", []string{
			"replay diverged: non-determinism at step 4: the script now makes a call the journal does not hold (more steps than the original run)\n",
			"new:       time.now(null) at more.star:5:", "all 3 journaled steps matched: the script goes on past the end of the original run"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ctl(t, "replay", id, "--script", filepath.Join("testdata", "diverge", tt.script))
			if r.code != cli.ExitDiverged || r.stdout != "" {
				t.Fatalf("%v", r)
			}
			for _, want := range tt.want {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		r := ctl(t, "replay", id, "--script", "testdata/diverge/args.star", "--json")
		var rep replay.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != cli.ExitDiverged {
			t.Fatalf("%v\n%v", err, r)
		}
		if d := rep.Divergence; d == nil || d.Step != "2" || d.Journaled == nil || d.New == nil || rep.Script != "order" {
			t.Fatalf("report = %+v", rep)
		}
	})
	t.Run("other result", func(t *testing.T) {
		r := ctl(t, "replay", id, "--script", "testdata/diverge/result.star", "--name", "order-v2")
		if r.code != cli.ExitDiverged || !strings.Contains(r.stdout, `"v": 2`) {
			t.Fatalf("%v", r)
		}
		for _, want := range []string{"the outcome differs from the original run\n", "  original: completed {\"order\":", "  replayed: completed {\"order\":", `"v":2}`} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
	})
	t.Run("script does not compile", func(t *testing.T) {
		r := ctl(t, "replay", id, "--script", "testdata/syntax.star")
		if r.code != cli.ExitFailure || !regexp.MustCompile(`(?m)^syntax\.star:2:\d+: `).MatchString(r.stderr) {
			t.Fatalf("%v", r)
		}
	})
	if calls.Load() != 1 {
		t.Errorf("replays made %d outside calls, want none", calls.Load()-1)
	}
}

func TestExportAndReplayFrom(t *testing.T) {
	isolate(t)
	url, calls := outside(t)
	id, want := orderRun(t, url)
	dir := t.TempDir()
	file := filepath.Join(dir, "run.json")

	r := ctl(t, "runs", "export", id)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("export:\n%v", r)
	}
	exp, err := journal.ParseExport([]byte(r.stdout))
	if err != nil || exp.Run.ID != id || len(exp.Journal) < 7 {
		t.Fatalf("export is not a run file: %v\n%v", err, r)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"format\": \"drover.run/v1\",\n  \"run\": {\n    \"id\": ") || !strings.Contains(r.stdout, "\n    {\"kind\":\"start\",") {
		t.Errorf("export layout:\n%s", r.stdout)
	}
	if r = ctl(t, "runs", "export", id, "-o", file); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "exported to "+file) {
		t.Fatalf("export -o:\n%v", r)
	}

	// A laptop: no node anywhere. Starting one or calling a server would fail.
	srv := httptest.NewServer(nil)
	srv.Close()
	t.Setenv("DROVER_URL", srv.URL)
	t.Setenv("DROVER_DATA", "")
	t.Setenv("HOME", "")
	t.Setenv("XDG_DATA_HOME", "")

	r = ctl(t, "replay", "--from", file)
	if r.code != 0 || r.stdout != want || !strings.Contains(r.stderr, "replayed 3 of 3 steps") {
		t.Fatalf("replay --from:\n%v", r)
	}
	data, _ := os.ReadFile(file)
	if r = ctlIn(t, string(data), "replay", "--from", "-", "--script", "testdata/diverge/args.star"); r.code != cli.ExitDiverged {
		t.Fatalf("replay --from - --script:\n%v", r)
	}
	// Re-indenting the file (jq . run.json) changes no value.
	var v any
	json.Unmarshal(data, &v)
	indented, _ := json.MarshalIndent(v, "", "\t")
	if r = ctlIn(t, string(indented), "replay", "--from", "-"); r.code != 0 || r.stdout != want {
		t.Fatalf("replay of a re-indented file:\n%v", r)
	}

	bad := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, file, want string
	}{
		{"truncated", bad("truncated.json", string(data[:len(data)/2])), "truncated.json: not a Drover run file (truncated or corrupted JSON"},
		{"format version", bad("v9.json", strings.Replace(string(data), "drover.run/v1", "drover.run/v9", 1)), `v9.json: run file format "drover.run/v9" is not supported`},
		{"not a run file", bad("other.json", `{"hello": "world"}`), `other.json: not a Drover run file (no "format" field`},
		{"edited script", bad("edited.json", strings.Replace(string(data), "kv.put(", "kv.delete(", 1)), "edited.json: run file " + id + ": its script does not match the run's version hash"},
		{"missing", filepath.Join(dir, "nope.json"), "nope.json: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ctl(t, "replay", "--from", tt.file)
			if r.code != cli.ExitFailure || r.stdout != "" || !strings.HasPrefix(r.stderr, "ctl replay: ") || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, "engine: bad input") {
				t.Fatalf("want %q\n%v", tt.want, r)
			}
		})
	}
	if calls.Load() != 1 {
		t.Errorf("replays made %d outside calls, want none", calls.Load()-1)
	}
}

// serve starts an engine node named srv on its own data dir, serving its API.
func serve(t *testing.T) (*engine.Node, string) {
	t.Helper()
	n := startNode(t, t.TempDir())
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	return n, srv.URL
}

// eventually polls cond until it holds, failing the test after 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// show is the run as ctl runs show --json reports it.
func show(t *testing.T, id string, global ...string) api.RunDetail {
	t.Helper()
	r := ctl(t, append(global, "runs", "show", "--json", id)...)
	var d api.RunDetail
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || r.code != 0 {
		t.Fatalf("show: %v\n%v", err, r)
	}
	return d
}

func TestCancelParkedRun(t *testing.T) {
	isolate(t)
	_, url := serve(t)
	r := ctl(t, "--server", url, "run", "--detach", "testdata/nap.star", "--input", `{"for": "1h", "say": "hi"}`)
	if r.code != 0 {
		t.Fatalf("run:\n%v", r)
	}
	id := strings.TrimSpace(r.stdout)
	eventually(t, "the run is parked", func() bool { return show(t, id, "--server", url).WakeAt != nil })
	if r := ctl(t, "--server", url, "runs", "show", id); !strings.Contains(r.stdout, "Wakes: ") || !strings.Contains(r.stdout, "(parked in a durable sleep)") {
		t.Errorf("show of a parked run:\n%v", r)
	}

	r = ctl(t, "--server", url, "cancel", id, "--reason", "customer asked")
	if r.code != 0 || r.stdout != "run "+id+" cancelled\n" {
		t.Fatalf("cancel:\n%v", r)
	}
	d := show(t, id, "--server", url)
	if d.Status != api.StatusCancelled || d.Error == nil || !regexp.MustCompile(`^cancelled by \S+@\S+: customer asked$`).MatchString(d.Error.Message) {
		t.Fatalf("after cancel: %s %+v", d.Status, d.Error)
	}
	if r := ctl(t, "--server", url, "runs", "show", id); !strings.Contains(r.stdout, "Error:        cancelled by ") {
		t.Errorf("show:\n%v", r)
	}
	r = ctl(t, "--server", url, "cancel", id)
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "ctl cancel: run "+id+" has already cancelled") {
		t.Fatalf("cancel again:\n%v", r)
	}
	r = ctl(t, "--server", url, "cancel", "01ZZZZZZZZZZZZZZZZZZZZZZZZ")
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "unknown run") {
		t.Fatalf("cancel of an unknown run:\n%v", r)
	}
}

// leaveRun starts script on a node named like ctl's embedded node on the data
// dir, lets ready(run) become true, and stops the node: the run is left
// unfinished, as an interrupted ctl leaves it.
func leaveRun(t *testing.T, dir, script, input string, ready func(*engine.Node, string) bool) string {
	t.Helper()
	n, err := engine.NewNode(context.Background(), engine.Options{Name: "local", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join("testdata", script))
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(script, ".star")
	r, err := n.Start(context.Background(), api.StartRequest{
		Script: api.Script{Name: name, Main: script, Files: map[string]string{script: string(src)}},
		Input:  json.RawMessage(input),
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the run is ready", func() bool { return ready(n, r.ID) })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	n.Close(ctx)
	return r.ID
}

// parked reports whether the run is parked on its timer.
func parked(n *engine.Node, id string) bool {
	d, err := n.Get(context.Background(), id)
	return err == nil && d.WakeAt != nil
}

func TestCancelEmbedded(t *testing.T) {
	dir := isolate(t)
	t.Run("parked", func(t *testing.T) {
		id := leaveRun(t, dir, "nap.star", `{"for": "1h", "say": "hi"}`, parked)
		r := ctl(t, "cancel", id)
		if r.code != 0 || r.stdout != "run "+id+" cancelled\n" {
			t.Fatalf("%v", r)
		}
		if d := show(t, id); d.Status != api.StatusCancelled {
			t.Fatalf("status %s", d.Status)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		release := make(chan struct{})
		var started atomic.Bool
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started.Store(true)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(func() { close(release); slow.Close() })
		in, _ := json.Marshal(map[string]string{"url": slow.URL, "id": "1"})
		id := leaveRun(t, dir, "order.star", string(in), func(*engine.Node, string) bool { return started.Load() })
		if d := show(t, id); d.Status != api.StatusRunning || d.WakeAt != nil {
			t.Fatalf("not an interrupted run: %+v", d.Run)
		}
		r := ctl(t, "cancel", id, "--reason", "stuck")
		if r.code != 0 || r.stdout != "run "+id+" cancelled\n" {
			t.Fatalf("%v", r)
		}
		if d := show(t, id); d.Status != api.StatusCancelled || !strings.HasSuffix(d.Error.Message, ": stuck") {
			t.Fatalf("after cancel: %+v", d.Run)
		}
	})
}

func TestPin(t *testing.T) {
	isolate(t)
	r := ctl(t, "run", "testdata/echo.star")
	id := runID(t, r)
	r = ctl(t, "runs", "pin", id)
	if r.code != 0 || r.stdout != "run "+id+" pinned: kept past retention\n" {
		t.Fatalf("pin:\n%v", r)
	}
	r = ctl(t, "runs", "show", id)
	if !strings.Contains(r.stdout, "\nExpires:      never (pinned)\n") {
		t.Fatalf("show:\n%v", r)
	}
	if r = ctl(t, "runs", "pin", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"); r.code != cli.ExitFailure || !strings.Contains(r.stderr, "unknown run") {
		t.Fatalf("pin of an unknown run:\n%v", r)
	}
}

func TestResumeEndedRun(t *testing.T) {
	isolate(t)
	id := runID(t, ctl(t, "run", "testdata/echo.star"))
	r := ctl(t, "runs", "resume", id)
	if r.code != cli.ExitFailure || r.stderr != "ctl runs resume: run "+id+" has already completed\n" {
		t.Fatalf("%v", r)
	}
	r = ctl(t, "runs", "resume", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "--script", "testdata/nap_v2.star")
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "unknown run") {
		t.Fatalf("unknown run:\n%v", r)
	}
}

// TestResumeParkedRun moves a parked run to a version that diverges (the run
// is blocked), then to one that does not (the run completes on it), all with
// an embedded node, which waits for the run.
func TestResumeParkedRun(t *testing.T) {
	dir := isolate(t)
	id := leaveRun(t, dir, "nap.star", `{"for": "2s", "say": "hi"}`, parked)
	r := ctl(t, "replay", id)
	if r.code != 0 || !strings.Contains(r.stderr, "the run was still going: replayed its first 0 steps") {
		t.Fatalf("replay of a parked run:\n%v", r)
	}

	r = ctl(t, "runs", "resume", id, "--script", "testdata/nap_diverge.star")
	if r.code != cli.ExitFailure || r.stdout != "" {
		t.Fatalf("resume onto a diverging version:\n%v", r)
	}
	for _, want := range []string{"run " + id + " resumed on version ", "run " + id + " blocked: non-determinism at step 1",
		"fix the script or the node and run: ctl runs resume " + id + " [--script fixed.star]"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	r = ctl(t, "runs", "show", id)
	for _, want := range []string{"Status:       blocked\n", "Ended:        - (blocked)\n", "Error:        non-determinism at step 1", "Hint:         fix the script"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := ctl(t, "runs", "wait", id); r.code != cli.ExitFailure || r.stdout != "run "+id+" blocked\n" {
		t.Errorf("wait for a blocked run:\n%v", r)
	}

	r = ctl(t, "runs", "resume", id, "--script", "testdata/nap_v2.star")
	if r.code != 0 || r.stdout != "\"HI\"\n" {
		t.Fatalf("resume onto v2:\n%v", r)
	}
	v2, _ := os.ReadFile("testdata/nap_v2.star")
	s := api.Script{Main: "nap_v2.star", Files: map[string]string{"nap_v2.star": string(v2)}}
	if d := show(t, id); d.Status != api.StatusCompleted || d.Script != "nap" || d.Hash != s.Hash() {
		t.Fatalf("after resume: %+v", d.Run)
	}
}

// TestWaitRecovers checks that ctl runs wait continues a run an earlier ctl
// left unfinished, so that it can end.
func TestWaitRecovers(t *testing.T) {
	dir := isolate(t)
	id := leaveRun(t, dir, "nap.star", `{"for": "1500ms", "say": "up"}`, parked)
	if d := show(t, id); d.Status != api.StatusRunning {
		t.Fatalf("runs show continued the run: %+v", d.Run)
	}
	r := ctl(t, "runs", "wait", id)
	if r.code != 0 || r.stdout != "run "+id+" completed\n" {
		t.Fatalf("%v", r)
	}
}

// TestCheckoutWalkthrough replays runs of scripts/examples/checkout.star
// against its fixes as docs/replay.md does, so that the page stays true.
func TestCheckoutWalkthrough(t *testing.T) {
	isolate(t)
	const ex = "../scripts/examples/"
	ok := ctl(t, "run", ex+"checkout.star", "--input", `{"customer": "globex", "skus": ["pear", "fig"], "coupon": "VIP20"}`)
	failed := ctl(t, "run", ex+"checkout.star", "--input", `{"customer": "acme", "skus": ["apple", "fig"], "coupon": "SPRING24"}`)
	if ok.code != 0 || failed.code != cli.ExitFailure || !strings.Contains(failed.stderr, `failed: key "SPRING24" not in dict`) {
		t.Fatalf("runs:\n%v\n%v", ok, failed)
	}
	okID, failedID := runID(t, ok), runID(t, failed)
	tests := []struct {
		name, run, script string
		code              int
		want              string
	}{
		{"the failure replays", failedID, "", cli.ExitFailure, "replayed 5 of 5 steps"},
		{"the fix goes past the failure", failedID, "fixes/checkout_fixed.star", cli.ExitDiverged,
			"non-determinism at step 5: the script now makes a call the journal does not hold"},
		{"the fix keeps good runs", okID, "fixes/checkout_fixed.star", cli.ExitOK, "same result as the original run"},
		{"v2 unguarded changes a call", failedID, "fixes/checkout_v2_unpatched.star", cli.ExitDiverged,
			"non-determinism at step 4: the script now makes a different call than the journal holds"},
		{"v2 keeps good runs", okID, "fixes/checkout_v2.star", cli.ExitOK, "same result as the original run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"replay", tt.run}
			if tt.script != "" {
				args = append(args, "--script", ex+tt.script)
			}
			if r := ctl(t, args...); r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("want exit %d and %q\n%v", tt.code, tt.want, r)
			}
		})
	}
}

// TestOnlyRecoveringCommandsRunAnything leaves a run interrupted in the middle
// of an outside call: commands that read runs do not continue it (the call is
// not made again); ctl runs wait does, and the run completes.
func TestOnlyRecoveringCommandsRunAnything(t *testing.T) {
	dir := isolate(t)
	var calls atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 { // the first call hangs until the node stops
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Write([]byte(`{"sku": "pear"}`))
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	in, _ := json.Marshal(map[string]string{"url": srv.URL, "id": "9"})
	id := leaveRun(t, dir, "order.star", string(in), func(*engine.Node, string) bool { return calls.Load() == 1 })

	for _, args := range [][]string{{"runs", "ls"}, {"runs", "show", id}, {"runs", "export", id}, {"replay", id}, {"runs", "pin", id}} {
		if r := ctl(t, args...); r.code != 0 {
			t.Fatalf("%s:\n%v", strings.Join(args, " "), r)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("read-only commands made %d outside calls", n-1)
	}
	r := ctl(t, "runs", "wait", id)
	if r.code != 0 || r.stdout != "run "+id+" completed\n" || calls.Load() != 2 {
		t.Fatalf("wait (%d calls):\n%v", calls.Load(), r)
	}
}
