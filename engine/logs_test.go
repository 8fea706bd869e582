package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/starlark/builtins"
	logbuiltin "github.com/droverhq/drover/starlark/builtins/log"
	"github.com/droverhq/drover/starlark/builtins/tag"
)

// logLine is what the tests read of a run log line.
type logLine struct {
	Level   string            `json:"level"`
	Node    string            `json:"node"`
	Run     string            `json:"run"`
	Script  string            `json:"script"`
	Version string            `json:"version"`
	TraceID string            `json:"trace_id"`
	SpanID  string            `json:"span_id"`
	Attrs   map[string]string `json:"attrs"`
	Message string            `json:"message"`
	Pos     string            `json:"pos"`
}

// logRegistry is testRegistry with log.* and tag().
func logRegistry(execs *atomic.Int64) *builtins.Registry {
	reg := testRegistry(execs)
	logbuiltin.Register(reg)
	tag.Register(reg)
	return reg
}

// runLines returns the stored lines of run id.
func runLines(t *testing.T, n *Node, id string) []logLine {
	t.Helper()
	var out []logLine
	err := n.Logs(context.Background(), api.LogQuery{Run: id}, func(l api.LogLine) bool {
		var ll logLine
		if err := json.Unmarshal(l.Line, &ll); err != nil {
			t.Fatalf("line %s: %v", l.Line, err)
		}
		out = append(out, ll)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunLogsCarryTheRun: every line of a run, from the script or the
// engine, carries node, run, script, version, trace and span ids and every
// attribute of the run, those set by tag() included from the tag on; they
// read back in order.
func TestRunLogsCarryTheRun(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Name: "n1", Registry: logRegistry(&execs)})
	end := runScript(t, n, `
def main(input):
    log.info("before", n=1)
    tag(customer="acme")
    log.warn("after", n=2)
    test.flaky()
    return test.echo(1)
`, "")
	if end.Status != api.StatusCompleted {
		t.Fatalf("run: %+v", end.Error)
	}
	lines := runLines(t, n, end.ID)
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, l.Message)
		if l.Node != "n1" || l.Run != end.ID || l.Version == "" || len(l.TraceID) != 32 || len(l.SpanID) != 16 {
			t.Errorf("line %q lacks the run's fields: %+v", l.Message, l)
		}
	}
	want := []string{"run started", "before", "after", "step succeeded after retries", "run ended"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", msgs, want)
	}
	if lines[1].Attrs["customer"] != "" || lines[2].Attrs["customer"] != "acme" || lines[4].Attrs["customer"] != "acme" || lines[2].Level != "warn" || lines[2].Pos == "" {
		t.Errorf("attributes: before tag %v, after %+v, end %v", lines[1].Attrs, lines[2], lines[4].Attrs)
	}
	failed := runScript(t, n, "def main(input):\n    test.down()\n", "")
	var sawFailure bool
	for _, l := range runLines(t, n, failed.ID) {
		sawFailure = sawFailure || l.Message == "step failed" && l.Level == "warn"
	}
	if !sawFailure {
		t.Errorf("no line for the failed step of run %s", failed.ID)
	}
}

// TestLogsFollowByAttribute: a live tail filtered by an attribute gets
// every line of that customer's runs (tagged by tag() too) and none of
// others', including lines read back with since.
func TestLogsFollowByAttribute(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: logRegistry(&execs)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []logLine
	followErr := make(chan error, 1)
	go func() {
		followErr <- n.Logs(ctx, api.LogQuery{Attrs: map[string]string{"customer": "acme"}, Level: "info", Follow: true}, func(l api.LogLine) bool {
			if l.Ready() {
				return true
			}
			var ll logLine
			json.Unmarshal(l.Line, &ll)
			mu.Lock()
			got = append(got, ll)
			mu.Unlock()
			return true
		})
	}()
	src := "def main(input):\n    tag(customer=input)\n    for i in range(3):\n        log.info(\"line\", i=i)\n    log.debug(\"hidden\")\n"
	// The tap is live once a line of a first run arrives.
	var acme []string
	bustest.PollUntil(t, func() bool {
		acme = append(acme, runScript(t, n, src, `"acme"`).ID)
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	got = nil
	mu.Unlock()
	acme = append(acme, runScript(t, n, src, `"acme"`).ID)
	other := runScript(t, n, src, `"globex"`).ID
	acme = append(acme, runScript(t, n, src, `"acme"`).ID)
	last := acme[len(acme)-1]
	bustest.PollUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range got {
			if l.Run == last && l.Message == "run ended" {
				return true
			}
		}
		return false
	})
	mu.Lock()
	counts := map[string]int{}
	for _, l := range got {
		counts[l.Run]++
		if l.Run == other || l.Message == "hidden" || l.Attrs["customer"] != "acme" {
			t.Errorf("line not for this tail: %+v", l)
		}
	}
	mu.Unlock()
	for _, id := range acme[len(acme)-2:] {
		if counts[id] != 4 { // 3 lines and the end (the start line precedes tag())
			t.Errorf("run %s: %d lines, want 4 (%v)", id, counts[id], counts)
		}
	}
	cancel()
	if err := <-followErr; err != nil {
		t.Fatal(err)
	}
	// Read back: the same runs' lines, none of the other's.
	var back int
	err := n.Logs(context.Background(), api.LogQuery{Attrs: map[string]string{"customer": "acme"}, Since: time.Hour}, func(l api.LogLine) bool {
		var ll logLine
		json.Unmarshal(l.Line, &ll)
		if ll.Run == other {
			t.Errorf("read back a line of another customer: %s", l.Line)
		}
		back++
		return true
	})
	if err != nil || back < 5*len(acme) {
		t.Fatalf("read back %d lines of %d runs: %v", back, len(acme), err)
	}
}

// TestRunLogBounded: a run that logs from a loop past the node's limit keeps
// the limit's lines and one marker saying the log was cut.
func TestRunLogBounded(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: logRegistry(&execs), RunLogLines: 20})
	end := runScript(t, n, "def main(input):\n    for i in range(100):\n        log.info(\"flood\", i=i)\n", "")
	if end.Status != api.StatusCompleted {
		t.Fatalf("run: %+v", end.Error)
	}
	lines := runLines(t, n, end.ID)
	if len(lines) != 21 || !strings.Contains(lines[20].Message, "log cut: this run wrote more than 20 lines") {
		t.Fatalf("%d lines, last %+v", len(lines), lines[len(lines)-1])
	}
}

// TestLogsBadQueries: a query that selects nothing sensible, an unknown
// level or run, is refused before anything is read.
func TestLogsBadQueries(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: logRegistry(&execs)})
	for _, tt := range []struct {
		q    api.LogQuery
		want string
	}{
		{api.LogQuery{}, "logs of what?"},
		{api.LogQuery{Attrs: map[string]string{"customer": "acme"}}, "need since"},
		{api.LogQuery{Run: "x", Level: "loud"}, `level "loud": want debug, info, warn or error`},
		{api.LogQuery{Attrs: map[string]string{"a b": "c"}, Follow: true}, "attribute"},
	} {
		err := n.Logs(context.Background(), tt.q, func(api.LogLine) bool { return true })
		if !errors.Is(err, api.ErrBadInput) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want ErrBadInput with %q", tt.q, err, tt.want)
		}
	}
	if err := n.Logs(context.Background(), api.LogQuery{Run: "01NOSUCHRUN"}, func(api.LogLine) bool { return true }); !errors.Is(err, api.ErrUnknownRun) {
		t.Errorf("unknown run: %v", err)
	}
}

// TestLogsStreamOpensOnceTheTailIsInPlace: GET /v1/logs?follow=true answers
// only once its tail is in place, so a line written after the answer began
// reaches it, the first run's line included.
func TestLogsStreamOpensOnceTheTailIsInPlace(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: logRegistry(&execs)})
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/logs?attr=customer=acme&follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	runScript(t, n, "def main(input):\n    tag(customer=input)\n    log.info(\"first\")\n", `"acme"`)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"message":"first"`) {
			return
		}
	}
	t.Fatalf("the stream ended without the first run's line: %v", sc.Err())
}
