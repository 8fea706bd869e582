package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus/bustest"
)

func bundle(name string, files map[string]string) api.DeployRequest {
	return api.DeployRequest{Script: api.Script{Name: name, Main: "main.star", Files: files}, By: "test"}
}

const greetV1 = "def main(input):\n    return {\"v\": 1, \"x\": test.echo(input)}\n"
const greetV2 = "def main(input):\n    return {\"v\": 2, \"x\": test.echo(input)}\n"

func TestDeployRunHistoryRollback(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	ctx := context.Background()
	d1, err := n.Deploy(ctx, bundle("greet", map[string]string{"main.star": greetV1}))
	if err != nil || d1.Version != 1 || d1.By != "test" || d1.Files[0] != "main.star" {
		t.Fatalf("deploy v1: %+v %v", d1, err)
	}
	runLive := func(want int) {
		t.Helper()
		r, err := n.Start(ctx, api.StartRequest{Script: api.Script{Name: "greet"}, Input: json.RawMessage(`"hi"`)})
		if err != nil {
			t.Fatal(err)
		}
		end, err := n.Wait(ctx, r.ID)
		if err != nil || end.Status != api.StatusCompleted || !strings.Contains(string(end.Result), `"v":`+string(rune('0'+want))) || end.Script != "greet" {
			t.Fatalf("run on version %d: %v %+v %s", want, err, end, end.Result)
		}
	}
	runLive(1)
	if _, err := n.Deploy(ctx, bundle("greet", map[string]string{"main.star": greetV2})); err != nil {
		t.Fatal(err)
	}
	runLive(2)
	back, err := n.Rollback(ctx, "greet", 0, "ops")
	if err != nil || back.Version != 3 || back.Hash != d1.Hash || back.Note != "rollback to version 1" {
		t.Fatalf("rollback: %+v %v", back, err)
	}
	runLive(1)
	if _, err := n.Rollback(ctx, "greet", 2, "ops"); err != nil {
		t.Fatal(err)
	}
	runLive(2)
	hist, err := n.History(ctx, "greet")
	if err != nil || len(hist) != 4 || hist[0].Version != 1 || hist[3].Note != "rollback to version 2" {
		t.Fatalf("history: %+v %v", hist, err)
	}
	scripts, err := n.Scripts(ctx)
	if err != nil || len(scripts) != 1 || scripts[0].Version != 4 {
		t.Fatalf("scripts: %+v %v", scripts, err)
	}
	if _, err := n.Rollback(ctx, "greet", 9, "ops"); !errors.Is(err, api.ErrBadInput) || !strings.Contains(err.Error(), "versions are 1 to 4") {
		t.Fatalf("rollback to a missing version: %v", err)
	}
	if _, err := n.Start(ctx, api.StartRequest{Script: api.Script{Name: "nope"}}); !errors.Is(err, api.ErrUnknownScript) {
		t.Fatalf("run of an unknown script: %v", err)
	}
}

// TestDeployCheckReplay: a version that changes the calls past runs made is
// refused, with the divergent runs; one that keeps them is deployed.
func TestDeployCheckReplay(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	ctx := context.Background()
	if _, err := n.Deploy(ctx, bundle("c", map[string]string{"main.star": greetV1})); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r, err := n.Start(ctx, api.StartRequest{Script: api.Script{Name: "c"}, Input: json.RawMessage(`1`)})
		if err != nil {
			t.Fatal(err)
		}
		n.Wait(ctx, r.ID)
	}
	req := bundle("c", map[string]string{"main.star": "def main(input):\n    return test.echo(input + 1)\n"})
	req.CheckReplay = 2
	_, err := n.Deploy(ctx, req)
	var rc *api.ReplayCheckError
	if !errors.As(err, &rc) || rc.Checked != 2 || len(rc.Divergent) != 2 || !strings.Contains(rc.Error(), "non-determinism at step 1") {
		t.Fatalf("err = %v", err)
	}
	req = bundle("c", map[string]string{"main.star": greetV2}) // same calls, another result
	req.CheckReplay = 5
	d, err := n.Deploy(ctx, req)
	if err != nil || d.Replayed != 3 || d.Version != 2 {
		t.Fatalf("deploy: %+v %v", d, err)
	}
}

// TestHotReloadAcrossNodes: a deploy through one node reaches new runs on the
// others without a restart, and a run in flight keeps its version.
func TestHotReloadAcrossNodes(t *testing.T) {
	nodes := sharedNodes(t)
	ctx := context.Background()
	if _, err := nodes[0].Deploy(ctx, bundle("h", map[string]string{"main.star": greetV1})); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		bustest.PollUntil(t, func() bool {
			ls, err := n.deployer.Live(ctx, "h")
			return err == nil && ls.Deployment.Version == 1
		})
	}
	// A run in flight on v1 (parked in a durable sleep) finishes on v1.
	slow := bundle("s", map[string]string{"main.star": "def main(input):\n    sleep(\"300ms\")\n    return 1\n"})
	if _, err := nodes[0].Deploy(ctx, slow); err != nil {
		t.Fatal(err)
	}
	r, err := nodes[1].Start(ctx, api.StartRequest{Script: api.Script{Name: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	slow.Script.Files["main.star"] = "def main(input):\n    sleep(\"300ms\")\n    return 2\n"
	if _, err := nodes[2].Deploy(ctx, slow); err != nil {
		t.Fatal(err)
	}
	if end, err := nodes[1].Wait(ctx, r.ID); err != nil || string(end.Result) != "1" {
		t.Fatalf("run in flight: %v %s", err, end.Result)
	}
	if _, err := nodes[2].Deploy(ctx, bundle("h", map[string]string{"main.star": greetV2})); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		bustest.PollUntil(t, func() bool {
			ls, err := n.deployer.Live(ctx, "h")
			return err == nil && ls.Deployment.Version == 2
		})
	}
}

func TestHTTPTrigger(t *testing.T) {
	rec := recordSpans(t)

	var execs atomic.Int64
	reg := testRegistry(&execs)
	reg.MustRegister(sleepStep())
	n := newTestNode(t, Options{Registry: reg, PayloadLimit: 1024,
		HeaderAttrs: map[string]string{"X-Customer-Id": "customer"}})
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	ctx := context.Background()
	src := `
def main(input):
    if input.get("fail"):
        fail("card declined for " + input["who"])
    if input.get("slow"):
        sleep("2s")
    return {"hello": test.echo(input.get("who", "world"))}
`
	if _, err := n.Deploy(ctx, bundle("greet", map[string]string{"main.star": src})); err != nil {
		t.Fatal(err)
	}
	post := func(path, body string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(data)
	}
	errCode := func(body string) api.ErrorBody {
		var e api.ErrorBody
		json.Unmarshal([]byte(body), &e)
		return e
	}

	// 200 with the result, the run id in a header, attributes from headers,
	// the run's span a child of the incoming traceparent.
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, body := post("/v1/run/greet", `{"who":"acme"}`, map[string]string{"X-Customer-Id": "c-42", "traceparent": parent})
	id := resp.Header.Get(api.RunIDHeader)
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"hello":"acme"}` || id == "" || resp.Header.Get(api.VersionHeader) != "1" {
		t.Fatalf("sync: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	d, err := n.Get(ctx, id)
	if err != nil || d.Attrs["customer"] != "c-42" {
		t.Fatalf("attrs: %+v %v", d, err)
	}
	found := false
	for _, s := range rec.Ended() {
		if s.Name() == "run greet" && s.SpanContext().TraceID().String() == "4bf92f3577b34da6a3ce929d0e0e4736" && s.Parent().SpanID().String() == "00f067aa0ba902b7" {
			found = true
		}
	}
	if !found {
		t.Fatal("the run's span is not a child of the incoming traceparent")
	}

	// 202 when asked to run asynchronously.
	for _, hdr := range []map[string]string{{"Prefer": "respond-async"}, nil} {
		path := "/v1/run/greet"
		if hdr == nil {
			path += "?async=1"
		}
		resp, body = post(path, `{}`, hdr)
		var run api.Run
		if resp.StatusCode != 202 || json.Unmarshal([]byte(body), &run) != nil || run.ID != resp.Header.Get(api.RunIDHeader) {
			t.Fatalf("async: %d %s", resp.StatusCode, body)
		}
		if end, err := n.Wait(ctx, run.ID); err != nil || end.Status != api.StatusCompleted {
			t.Fatalf("async run: %v %+v", err, end)
		}
	}

	// Errors: stable JSON shape and status.
	resp, body = post("/v1/run/nope", `{}`, nil)
	if e := errCode(body); resp.StatusCode != 404 || e.Error.Code != api.CodeUnknownScript {
		t.Fatalf("unknown script: %d %s", resp.StatusCode, body)
	}
	resp, body = post("/v1/run/greet", `{"who": `, nil)
	if e := errCode(body); resp.StatusCode != 400 || e.Error.Code != api.CodeBadInput || !strings.Contains(e.Error.Message, "not JSON") {
		t.Fatalf("bad JSON: %d %s", resp.StatusCode, body)
	}
	resp, body = post("/v1/run/greet", `{"who": "`+strings.Repeat("x", 2000)+`"}`, nil)
	if e := errCode(body); resp.StatusCode != 413 || e.Error.Code != api.CodeTooLarge || !strings.Contains(e.Error.Message, "1024 bytes") {
		t.Fatalf("too large: %d %s", resp.StatusCode, body)
	}
	resp, body = post("/v1/run/greet", `{"fail": true, "who": "acme"}`, nil)
	if e := errCode(body); resp.StatusCode != 500 || e.Error.Code != api.CodeScriptFailed || !strings.Contains(e.Error.Message, "card declined for acme") ||
		e.Error.Position != "main.star:4:13" || e.Error.Run != resp.Header.Get(api.RunIDHeader) {
		t.Fatalf("script failure: %d %s", resp.StatusCode, body)
	}
	resp, body = post("/v1/run/greet?timeout=50ms", `{"slow": true}`, nil)
	e := errCode(body)
	if resp.StatusCode != 504 || e.Error.Code != api.CodeTimeout || e.Error.Run == "" || !strings.Contains(e.Error.Message, "goes on") {
		t.Fatalf("timeout: %d %s", resp.StatusCode, body)
	}
	if end, err := n.Wait(ctx, e.Error.Run); err != nil || end.Status != api.StatusCompleted {
		t.Fatalf("the run that timed out did not go on: %v %+v", err, end)
	}
	resp, body = post("/v1/run/greet?timeout=soon", `{}`, nil)
	if resp.StatusCode != 400 {
		t.Fatalf("bad timeout: %d %s", resp.StatusCode, body)
	}

	// Deploy errors over HTTP.
	resp, body = post("/v1/scripts/greet", `{"script": {"main": "main.star", "files": {"main.star": "def main(:\n"}}}`, nil)
	if e := errCode(body); resp.StatusCode != 422 || e.Error.Code != api.CodeCompileError || len(e.Error.Errors) == 0 {
		t.Fatalf("broken deploy: %d %s", resp.StatusCode, body)
	}
}

// TestConcurrentDeploys: deploys racing for one name through three nodes get
// consecutive versions, and each version's history entry is the deployment
// that the pointer held.
func TestConcurrentDeploys(t *testing.T) {
	nodes := sharedNodes(t)
	ctx := context.Background()
	const each = 4
	var wg sync.WaitGroup
	hashes := make(chan string, 3*each)
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				src := fmt.Sprintf("def main(input):\n    return %d\n", i*100+j)
				d, err := n.Deploy(ctx, bundle("race", map[string]string{"main.star": src}))
				if err != nil {
					t.Error(err)
					return
				}
				hashes <- fmt.Sprint(d.Version, " ", d.Hash)
			}
		}()
	}
	wg.Wait()
	close(hashes)
	want := map[string]bool{}
	for h := range hashes {
		want[h] = true
	}
	hist, err := nodes[0].History(ctx, "race")
	if err != nil || len(hist) != 3*each {
		t.Fatalf("history: %d entries, %v", len(hist), err)
	}
	for i, d := range hist {
		if d.Version != i+1 || !want[fmt.Sprint(d.Version, " ", d.Hash)] {
			t.Fatalf("history entry %d is %d %s, which no deploy returned", i, d.Version, d.Hash)
		}
	}
}
