package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
)

// backend is an api.API that knows one deployed script, "greet", and counts
// the runs it is asked to start. Methods the tests do not reach panic.
type backend struct {
	api.API
	starts atomic.Int64
	// waitErr, when set, is what Wait returns.
	waitErr error
}

func (b *backend) Start(_ context.Context, req api.StartRequest) (*api.Run, error) {
	b.starts.Add(1)
	return &api.Run{ID: "01RUN", Script: req.Script.Name, Status: api.StatusRunning, Version: 3}, nil
}

func (b *backend) Wait(ctx context.Context, id string) (*api.Run, error) {
	if b.waitErr != nil {
		return nil, b.waitErr
	}
	return &api.Run{ID: id, Status: api.StatusCompleted, Result: json.RawMessage(`"ok"`)}, nil
}

func (b *backend) ScriptSource(_ context.Context, name string) (*api.ScriptVersion, error) {
	if name != "greet" {
		return nil, api.ErrUnknownScript
	}
	return &api.ScriptVersion{}, nil
}

func (b *backend) Record(_ context.Context, id string) (*api.Run, error) {
	return &api.Run{ID: id, Status: api.StatusRunning}, nil
}

func (b *backend) Nodes(context.Context) ([]api.NodeInfo, error) {
	return []api.NodeInfo{{Name: "n1", Integrations: []builtins.IntegrationStatus{{Name: "sql", State: builtins.StateFailing, Error: "integration sql: check: dial 127.0.0.1:1: refused"}}}, {Name: "n2"}}, nil
}

func (b *backend) OpenEvents(context.Context, string) (Events, error) { panic("not reached") }
func (b *backend) Name() string                                       { return "n1" }
func (b *backend) NATSURL() string                                    { return "" }

func serve(t *testing.T) (*backend, *httptest.Server) {
	t.Helper()
	b := &backend{}
	s, err := New(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return b, srv
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, api.ErrorBody) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	return resp, eb
}

// TestBadRequestsStartNothing: a request with a bad parameter is refused
// with 400 bad_input before any run is started.
func TestBadRequestsStartNothing(t *testing.T) {
	b, srv := serve(t)
	for _, tt := range []struct {
		name, method, path, body string
		hdr                      map[string]string
		want                     string
	}{
		{"trigger timeout", "POST", "/v1/run/greet?timeout=soon", `{}`, nil, `timeout="soon" is not a positive duration`},
		{"trigger zero timeout", "POST", "/v1/run/greet?timeout=0s", `{}`, nil, "timeout"},
		{"trigger async", "POST", "/v1/run/greet?async=maybe", `{}`, nil, `async="maybe"`},
		{"trigger body", "POST", "/v1/run/greet", `{"who":`, nil, "not JSON"},
		{"start wait timeout", "POST", "/v1/runs?wait=1&timeout=nope", `{"script":{"name":"greet"}}`, nil, `timeout="nope"`},
		{"start body", "POST", "/v1/runs", `{"script":`, nil, "not a JSON StartRequest"},
		{"wait timeout", "GET", "/v1/runs/01RUN/wait?timeout=nope", ``, nil, `timeout="nope"`},
		{"list since", "GET", "/v1/runs?since=yesterday", ``, nil, "since"},
		{"list version", "GET", "/v1/runs?version=x&script=greet", ``, nil, `version "x"`},
		{"list version of what", "GET", "/v1/runs?version=2", ``, nil, "give script= too"},
		{"list before", "GET", "/v1/runs?before=yesterday", ``, nil, `before "yesterday": want a run id`},
		{"counts by status", "GET", "/v1/runs/counts?status=failed", ``, nil, "leave out status"},
		{"counts bad attr", "GET", "/v1/runs/counts?attr=acme", ``, nil, "want name=value"},
		{"script version", "GET", "/v1/scripts/greet/versions/latest", ``, nil, `version "latest"`},
		{"cluster events limit", "GET", "/v1/cluster/events?limit=5000", ``, nil, "from 1 to 1000"},
		{"replay body", "POST", "/v1/runs/01RUN/replay", `{"script":`, nil, "request body"},
		{"resume both", "POST", "/v1/runs/01RUN/resume", `{"version":2,"script":{"main":"a.star"}}`, nil, "not both"},
		{"events id", "GET", "/v1/runs/01RUN/events", ``, map[string]string{"Last-Event-ID": "x"}, "Last-Event-ID"},
		{"events after", "GET", "/v1/runs/01RUN/events?after=-1", ``, nil, `after "-1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, eb := do(t, tt.method, srv.URL+tt.path, tt.body, tt.hdr)
			if resp.StatusCode != http.StatusBadRequest || eb.Error.Code != api.CodeBadInput || !strings.Contains(eb.Error.Message, tt.want) {
				t.Fatalf("%d %+v, want 400 bad_input with %q", resp.StatusCode, eb, tt.want)
			}
			if n := b.starts.Load(); n != 0 {
				t.Fatalf("%d runs started", n)
			}
		})
	}
	// The same requests, valid, start runs.
	if resp, _ := do(t, "POST", srv.URL+"/v1/run/greet?timeout=5s&async=1", `{}`, nil); resp.StatusCode != http.StatusAccepted || resp.Header.Get(api.VersionHeader) != "3" {
		t.Fatalf("valid trigger: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := do(t, "POST", srv.URL+"/v1/runs?wait=1&timeout=5s", `{"script":{"name":"greet"}}`, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid start: %d", resp.StatusCode)
	}
	if b.starts.Load() != 2 {
		t.Fatalf("%d runs started, want 2", b.starts.Load())
	}
}

// TestUnknownRoutesAnswerJSON: unknown paths and methods get the API's JSON
// error shape, with an Allow header for a known path.
func TestUnknownRoutesAnswerJSON(t *testing.T) {
	_, srv := serve(t)
	resp, eb := do(t, "GET", srv.URL+"/v2/nothing", "", nil)
	if resp.StatusCode != http.StatusNotFound || eb.Error.Code != api.CodeNotFound || resp.Header.Get("Content-Type") != "application/json" ||
		!strings.Contains(eb.Error.Message, "GET /v2/nothing") {
		t.Fatalf("unknown path: %d %+v", resp.StatusCode, eb)
	}
	resp, eb = do(t, "DELETE", srv.URL+"/v1/runs/01RUN", "", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || eb.Error.Code != api.CodeMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("wrong method: %d %+v allow %q", resp.StatusCode, eb, resp.Header.Get("Allow"))
	}
	resp, eb = do(t, "GET", srv.URL+"/v1/run/greet", "", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || !strings.Contains(eb.Error.Message, "use POST") {
		t.Fatalf("GET of a trigger: %d %+v allow %q", resp.StatusCode, eb, resp.Header.Get("Allow"))
	}
}

func TestHeaderAttrsAreChecked(t *testing.T) {
	if _, err := New(&backend{}, Options{HeaderAttrs: map[string]string{"X-Customer": "not ok"}}); err == nil {
		t.Fatal("an attribute name with a space was accepted")
	}
}

// TestTriggerOfARunDroppedAtShutdown: a synchronous trigger whose run its node
// dropped (stopped before the run's first output: nothing was kept) answers
// 503 shutting_down, saying to send the request again.
func TestTriggerOfARunDroppedAtShutdown(t *testing.T) {
	b, srv := serve(t)
	b.waitErr = api.ErrUnknownRun
	resp, eb := do(t, http.MethodPost, srv.URL+"/v1/run/greet", `{}`, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || eb.Error.Code != api.CodeShuttingDown ||
		!strings.Contains(eb.Error.Message, "01RUN") || !strings.Contains(eb.Error.Message, "send the request again") {
		t.Fatalf("status %d, %+v", resp.StatusCode, eb.Error)
	}
}

// TestIntegrations: GET /v1/integrations lists each live node's
// integrations with their state.
func TestIntegrations(t *testing.T) {
	_, srv := serve(t)
	resp, err := http.Get(srv.URL + "/v1/integrations")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Nodes []api.NodeIntegrations `json:"nodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if len(out.Nodes) != 2 || out.Nodes[0].Node != "n1" || out.Nodes[0].Integrations[0].State != builtins.StateFailing || out.Nodes[1].Node != "n2" || len(out.Nodes[1].Integrations) != 0 {
		t.Fatalf("integrations: %+v", out.Nodes)
	}
}
