package engine_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
	"github.com/droverhq/drover/engine"
	"github.com/droverhq/drover/starlark/builtins"
	allbuiltins "github.com/droverhq/drover/starlark/builtins/all"
)

// These tests are in package engine_test so that they can use api/client.

// eventsRegistry holds the standard builtins (for tag) and test.echo(x), which
// returns x, test.boom(), which fails, and test.hold(), which signals held and
// returns "released" once release is closed.
func eventsRegistry(held chan<- struct{}, release <-chan struct{}) *builtins.Registry {
	r := builtins.NewRegistry()
	allbuiltins.Register(r)
	r.MustRegister(&builtins.Step{
		Name: "test.echo",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var x starlark.Value
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "x", &x); err != nil {
				return nil, err
			}
			return builtins.ToJSON(x)
		},
		Exec: func(_ context.Context, _ builtins.Env, args json.RawMessage) (any, error) { return args, nil },
	})
	r.MustRegister(&builtins.Step{
		Name: "test.boom",
		Exec: func(context.Context, builtins.Env, json.RawMessage) (any, error) {
			return nil, builtins.Errorf("boom", "test.boom: it went off")
		},
	})
	r.MustRegister(&builtins.Step{
		Name: "test.hold",
		Exec: func(ctx context.Context, _ builtins.Env, _ json.RawMessage) (any, error) {
			held <- struct{}{}
			select {
			case <-release:
				return "released", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})
	return r
}

// eventsNode starts a node with opts and eventsRegistry, and serves its API.
// Closing release lets test.hold return; each call of test.hold sends on held
// first.
func eventsNode(t *testing.T, opts engine.Options) (n *engine.Node, srv *httptest.Server, held <-chan struct{}, release chan<- struct{}) {
	t.Helper()
	h, r := make(chan struct{}, 4), make(chan struct{})
	opts.Name, opts.DataDir, opts.Registry = "n1", t.TempDir(), eventsRegistry(h, r)
	n, err := engine.NewNode(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewServer(n.Handler())
	t.Cleanup(func() {
		grace, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		n.Close(grace)
		srv.Close()
	})
	return n, srv, h, r
}

// waitHeld waits until test.hold is called.
func waitHeld(t *testing.T, held <-chan struct{}) {
	t.Helper()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("test.hold was not called within 10s")
	}
}

func startRun(t *testing.T, n *engine.Node, src string) *api.Run {
	t.Helper()
	run, err := n.Start(context.Background(), api.StartRequest{Script: api.Script{Name: "t", Main: "t.star", Files: map[string]string{"t.star": src}}})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func waitRun(t *testing.T, n *engine.Node, id string) *api.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run, err := n.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// sseEvent is one event as it is on the wire.
type sseEvent struct {
	id        uint64
	kind      string
	data      map[string]any
	raw       string
	comment   bool // a comment line, such as the keep-alive
	dataLines int
	fields    string // the field names in the order they came, e.g. "id event data"
}

// openEvents requests the event stream of run id; lastID, if not empty, is
// sent as Last-Event-ID.
func openEvents(t *testing.T, srv *httptest.Server, id, lastID string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/runs/"+id+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readSSE parses a text/event-stream body strictly (one data line per event,
// fields in the order id, event, data) and sends each event on the returned
// channel, which is closed when the body ends.
func readSSE(t *testing.T, resp *http.Response) <-chan sseEvent {
	t.Helper()
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" || cc != "no-cache" {
		t.Fatalf("HTTP %d, Content-Type %q, Cache-Control %q", resp.StatusCode, ct, cc)
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		r := bufio.NewReader(resp.Body)
		var ev sseEvent
		var fields []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "" && len(fields) == 0:
				// a blank line after only comments dispatches nothing
			case line == "":
				ev.fields = strings.Join(fields, " ")
				out <- ev
				ev, fields = sseEvent{}, nil
			case strings.HasPrefix(line, ":"):
				out <- sseEvent{comment: true, raw: line}
			default:
				name, value, _ := strings.Cut(line, ": ")
				fields = append(fields, name)
				switch name {
				case "id":
					ev.id, _ = strconv.ParseUint(value, 10, 64)
				case "event":
					ev.kind = value
				case "data":
					ev.dataLines++
					ev.raw = value
					json.Unmarshal([]byte(value), &ev.data)
				}
			}
		}
	}()
	return out
}

// nextEvent returns the next event (not comment) of the stream.
func nextEvent(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream closed early")
			}
			if ev.comment {
				continue
			}
			if ev.fields != "id event data" || ev.dataLines != 1 || ev.data == nil {
				t.Fatalf("malformed event: fields %q, %d data lines, data %s", ev.fields, ev.dataLines, ev.raw)
			}
			return ev
		case <-timeout:
			t.Fatal("no event within 10s")
		}
	}
}

// streamEnds checks that the stream closes, with no event left.
func streamEnds(t *testing.T, events <-chan sseEvent) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if !ev.comment {
				t.Fatalf("event after the end: %s %s", ev.kind, ev.raw)
			}
		case <-timeout:
			t.Fatal("the stream did not close within 10s")
		}
	}
}

// all reads every event of a stream that ends by itself.
func all(t *testing.T, events <-chan sseEvent) []sseEvent {
	t.Helper()
	var out []sseEvent
	for {
		ev := nextEvent(t, events)
		out = append(out, ev)
		if ev.kind == "end" {
			streamEnds(t, events)
			return out
		}
	}
}

func kinds(evs []sseEvent) string {
	var k []string
	for _, e := range evs {
		if e.data["key"] != nil {
			k = append(k, fmt.Sprintf("%s.%v", e.kind, e.data["key"]))
		} else {
			k = append(k, e.kind)
		}
	}
	return strings.Join(k, " ")
}

func TestEventsCompletedRun(t *testing.T) {
	n, srv, _, _ := eventsNode(t, engine.Options{})
	tests := []struct {
		name, src  string
		wantKinds  string
		wantStatus string
		// what the last result says
		wantOutcome, wantBuiltin string
	}{
		{"completed", "def main(input):\n    a = test.echo(1)\n    tag(order = 'o1')\n    return test.echo(a + 1)\n",
			"start call.1 result.1 tag.1 call.2 result.2 end", api.StatusCompleted, "ok", "test.echo"},
		{"failed", "def main(input):\n    test.echo('x')\n    test.boom()\n",
			"start call.1 result.1 call.2 result.2 end", api.StatusFailed, "error", "test.boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := startRun(t, n, tt.src)
			waitRun(t, n, run.ID)
			evs := all(t, readSSE(t, openEvents(t, srv, run.ID, "")))
			if got := kinds(evs); got != tt.wantKinds {
				t.Fatalf("events %q, want %q", got, tt.wantKinds)
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].id <= evs[i-1].id {
					t.Fatalf("event ids not increasing: %d then %d", evs[i-1].id, evs[i].id)
				}
			}
			if start := evs[0].data; start["run"] != run.ID || start["script"] != "t" || start["coordinator"] != "n1" {
				t.Errorf("start data %s", evs[0].raw)
			}
			if call := evs[1].data; call["step"] != "1" || call["builtin"] != "test.echo" || call["node"] != "n1" || call["pos"] == nil || call["args"] == nil {
				t.Errorf("call data %s", evs[1].raw)
			}
			if res := evs[2].data; res["step"] != "1" || res["builtin"] != "test.echo" || res["node"] != "n1" || res["outcome"] != "ok" || res["value"] == nil || res["attempts"] != 1.0 {
				t.Errorf("result data %s", evs[2].raw)
			}
			last := evs[len(evs)-2].data
			if last["outcome"] != tt.wantOutcome || last["builtin"] != tt.wantBuiltin || (tt.wantOutcome == "error") != (last["error"] != nil) {
				t.Errorf("last result data %s", evs[len(evs)-2].raw)
			}
			if end := evs[len(evs)-1].data; end["status"] != tt.wantStatus || end["steps"] != 2.0 {
				t.Errorf("end data %s", evs[len(evs)-1].raw)
			}
		})
	}
}

func TestEventsLiveRun(t *testing.T) {
	n, srv, held, release := eventsNode(t, engine.Options{})
	run := startRun(t, n, "def main(input):\n    test.echo(1)\n    return test.hold()\n")
	waitHeld(t, held)
	events := readSSE(t, openEvents(t, srv, run.ID, ""))
	var got []sseEvent
	for _, want := range []string{"start", "call", "result", "call"} {
		ev := nextEvent(t, events)
		if ev.kind != want {
			t.Fatalf("event %d is %s, want %s", len(got)+1, ev.kind, want)
		}
		got = append(got, ev)
	}
	if got[3].data["builtin"] != "test.hold" || got[3].data["step"] != "2" {
		t.Fatalf("the pending call: %s", got[3].raw)
	}
	close(release)
	res := nextEvent(t, events)
	if res.kind != "result" || res.data["step"] != "2" || res.data["value"] != "released" || res.data["builtin"] != "test.hold" {
		t.Fatalf("after release: %s %s", res.kind, res.raw)
	}
	if end := nextEvent(t, events); end.kind != "end" || end.data["status"] != api.StatusCompleted {
		t.Fatalf("last event: %s %s", end.kind, end.raw)
	}
	streamEnds(t, events)
}

func TestEventsLastEventID(t *testing.T) {
	n, srv, _, _ := eventsNode(t, engine.Options{})
	run := startRun(t, n, "def main(input):\n    test.echo(1)\n    test.echo(2)\n")
	waitRun(t, n, run.ID)
	full := all(t, readSSE(t, openEvents(t, srv, run.ID, "")))
	if kinds(full) != "start call.1 result.1 call.2 result.2 end" {
		t.Fatalf("events %q", kinds(full))
	}
	for _, after := range []int{0, 2, len(full) - 1} {
		t.Run(fmt.Sprintf("after %d events", after), func(t *testing.T) {
			last := ""
			if after > 0 {
				last = strconv.FormatUint(full[after-1].id, 10)
			}
			got := all(t, readSSE(t, openEvents(t, srv, run.ID, last)))
			if kinds(got) != kinds(full[after:]) {
				t.Fatalf("resumed after %s: %q, want %q", last, kinds(got), kinds(full[after:]))
			}
			for i, ev := range got {
				if ev.id != full[after+i].id || ev.raw != full[after+i].raw {
					t.Fatalf("resumed event %d: %d %s, want %d %s", i, ev.id, ev.raw, full[after+i].id, full[after+i].raw)
				}
			}
		})
	}
	t.Run("after the end", func(t *testing.T) {
		streamEnds(t, readSSE(t, openEvents(t, srv, run.ID, strconv.FormatUint(full[len(full)-1].id, 10))))
	})
	// ?after= (a stream opened again by a client that cannot send the
	// header) does the same; with both, the later wins.
	t.Run("after=", func(t *testing.T) {
		resp, err := srv.Client().Get(srv.URL + "/v1/runs/" + run.ID + "/events?after=" + strconv.FormatUint(full[2].id, 10))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if got := all(t, readSSE(t, resp)); kinds(got) != kinds(full[3:]) {
			t.Fatalf("after=%d: %q, want %q", full[2].id, kinds(got), kinds(full[3:]))
		}
		req, _ := http.NewRequest("GET", srv.URL+"/v1/runs/"+run.ID+"/events?after="+strconv.FormatUint(full[1].id, 10), nil)
		req.Header.Set("Last-Event-ID", strconv.FormatUint(full[3].id, 10))
		both, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer both.Body.Close()
		if got := all(t, readSSE(t, both)); kinds(got) != kinds(full[4:]) {
			t.Fatalf("after= and a later Last-Event-ID: %q, want %q", kinds(got), kinds(full[4:]))
		}
	})
	t.Run("not a number", func(t *testing.T) {
		resp := openEvents(t, srv, run.ID, "x")
		if code := errorCode(t, resp); resp.StatusCode != http.StatusBadRequest || code != api.CodeBadInput {
			t.Fatalf("HTTP %d, code %q", resp.StatusCode, code)
		}
	})
}

func errorCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var body api.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Error.Code
}

func TestEventsUnknownRun(t *testing.T) {
	_, srv, _, _ := eventsNode(t, engine.Options{})
	for _, id := range []string{"01ZZZZZZZZZZZZZZZZZZZZZZZZ", "no.such", "a*"} {
		resp := openEvents(t, srv, id, "")
		if code := errorCode(t, resp); resp.StatusCode != http.StatusNotFound || code != api.CodeUnknownRun {
			t.Fatalf("run %q: HTTP %d, code %q", id, resp.StatusCode, code)
		}
	}
}

func TestEventsClient(t *testing.T) {
	n, srv, held, release := eventsNode(t, engine.Options{})
	c := client.New(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	run := startRun(t, n, "def main(input):\n    test.echo({'a': 'line\\nbreak'})\n    return test.hold()\n")
	waitHeld(t, held)
	got := make(chan api.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.Events(ctx, run.ID, func(e api.Event) bool {
			got <- e
			return true
		})
	}()
	var evs []api.Event
	for len(evs) < 4 {
		select {
		case e := <-got:
			evs = append(evs, e)
		case <-ctx.Done():
			t.Fatalf("only %d events before the deadline", len(evs))
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Events: %v", err)
	}
	close(got)
	for e := range got {
		evs = append(evs, e)
	}
	var k []string
	for _, e := range evs {
		k = append(k, string(e.Kind))
	}
	if strings.Join(k, " ") != "start call result call result end" {
		t.Fatalf("events %v", k)
	}
	var res struct {
		Value struct{ A string } `json:"value"`
	}
	if err := json.Unmarshal(evs[2].Data, &res); err != nil || res.Value.A != "line\nbreak" {
		t.Fatalf("result data %s: %v", evs[2].Data, err)
	}

	// The in-process feed is the same.
	var local []api.Event
	if err := n.Events(ctx, run.ID, func(e api.Event) bool { local = append(local, e); return true }); err != nil {
		t.Fatal(err)
	}
	if len(local) != len(evs) {
		t.Fatalf("Node.Events gave %d events, the client %d", len(local), len(evs))
	}
	for i := range local {
		if local[i].ID != evs[i].ID || local[i].Kind != evs[i].Kind || string(local[i].Data) != string(evs[i].Data) {
			t.Fatalf("event %d: node %+v, client %+v", i, local[i], evs[i])
		}
	}

	t.Run("stop early", func(t *testing.T) {
		count := 0
		err := c.Events(ctx, run.ID, func(api.Event) bool { count++; return count < 2 })
		if err != nil || count != 2 {
			t.Fatalf("Events = %v after %d events, want nil after 2", err, count)
		}
	})
	t.Run("unknown run", func(t *testing.T) {
		err := c.Events(ctx, "01ZZZZZZZZZZZZZZZZZZZZZZZZ", func(api.Event) bool { return true })
		if !errors.Is(err, api.ErrUnknownRun) {
			t.Fatalf("Events of an unknown run = %v, want ErrUnknownRun", err)
		}
	})
}

func TestEventsNodeShutdown(t *testing.T) {
	n, srv, held, _ := eventsNode(t, engine.Options{})
	run := startRun(t, n, "def main(input):\n    return test.hold()\n")
	waitHeld(t, held)
	got := make(chan api.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- client.New(srv.URL).Events(context.Background(), run.ID, func(e api.Event) bool {
			got <- e
			return true
		})
	}()
	for _, want := range []string{"start", "call"} {
		select {
		case e := <-got:
			if string(e.Kind) != want {
				t.Fatalf("event %s, want %s", e.Kind, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event within 10s", want)
		}
	}
	grace, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	n.Close(grace)
	select {
	case err := <-done:
		if !errors.Is(err, api.ErrClosed) {
			t.Fatalf("Events when the node closes = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end within 10s of the node closing")
	}
}

func TestEventsPinnedRun(t *testing.T) {
	n, srv, _, _ := eventsNode(t, engine.Options{JournalMaxAge: 2 * time.Second})
	waitRun(t, n, startRun(t, n, "def main(input):\n    test.echo('gone')\n").ID)
	kept := startRun(t, n, "def main(input):\n    test.echo('kept')\n")
	waitRun(t, n, kept.ID)
	if _, err := n.Pin(context.Background(), kept.ID); err != nil {
		t.Fatal(err)
	}
	// Entries of the first run come before kept's in the journal stream; from
	// the pinned copy, kept's entries are numbered from 1.
	deadline := time.Now().Add(30 * time.Second)
	for {
		first := uint64(0)
		err := n.Events(context.Background(), kept.ID, func(e api.Event) bool { first = e.ID; return false })
		if err != nil {
			t.Fatal(err)
		}
		if first == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal never expired: first event id %d", first)
		}
		time.Sleep(50 * time.Millisecond) // polling interval: expiry is the server's timer
	}
	evs := all(t, readSSE(t, openEvents(t, srv, kept.ID, "")))
	if kinds(evs) != "start call.1 result.1 end" || evs[0].id != 1 || evs[3].id != 4 || evs[2].data["value"] != "kept" || evs[2].data["builtin"] != "test.echo" {
		t.Fatalf("events of the pinned copy: %q, ids %d..%d, result %s", kinds(evs), evs[0].id, evs[len(evs)-1].id, evs[2].raw)
	}
	if got := all(t, readSSE(t, openEvents(t, srv, kept.ID, "2"))); kinds(got) != "result.1 end" {
		t.Fatalf("pinned copy after Last-Event-ID 2: %q", kinds(got))
	}
}

// TestEventsKeepAlive: a stream with nothing to say sends a comment line every
// EventsKeepAlive, and the events still come after it.
func TestEventsKeepAlive(t *testing.T) {
	n, srv, held, release := eventsNode(t, engine.Options{EventsKeepAlive: 20 * time.Millisecond})
	run := startRun(t, n, "def main(input):\n    return test.hold()\n")
	waitHeld(t, held)
	events := readSSE(t, openEvents(t, srv, run.ID, ""))
	for _, want := range []string{"start", "call"} {
		if ev := nextEvent(t, events); ev.kind != want {
			t.Fatalf("got %s, want %s", ev.kind, want)
		}
	}
	comments := 0
	deadline := time.After(10 * time.Second)
	for comments < 2 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream closed while the run was held")
			}
			if !ev.comment || !strings.Contains(ev.raw, "keep-alive") {
				t.Fatalf("got %q, want a keep-alive comment", ev.raw)
			}
			comments++
		case <-deadline:
			t.Fatalf("%d keep-alive comments within 10s", comments)
		}
	}
	close(release)
	if ev := nextEvent(t, events); ev.kind != "result" {
		t.Fatalf("after the keep-alives: %s", ev.kind)
	}
}
