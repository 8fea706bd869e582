package consul_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/consul"
)

// agent is a stand-in for a Consul agent's HTTP API (no agent can run on
// this machine): the endpoints the integration uses, as Consul documents
// them (https://developer.hashicorp.com/consul/api-docs): GET
// /v1/status/leader, GET and PUT /v1/kv/:key (GET answers a JSON list of
// KV pairs with base64 values, 404 when missing; PUT answers true), GET
// /v1/health/service/:service?passing&tag= (a JSON list of {Node, Service,
// Checks}), and ACL tokens in X-Consul-Token (403 without the right one).
type agent struct {
	token string
	mu    sync.Mutex
	kv    map[string][]byte
	// services: each instance's node address, service address, port, tags
	// and whether its checks pass.
	services map[string][]instance
}

type instance struct {
	node, addr string
	port       int
	tags       []string
	passing    bool
}

func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Consul-Token") != a.token {
		http.Error(w, "Permission denied: token lacks permission", http.StatusForbidden)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case r.URL.Path == "/v1/status/leader":
		json.NewEncoder(w).Encode("127.0.0.1:8300")
	case strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.Method == http.MethodGet:
		key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		v, ok := a.kv[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("X-Consul-Index", "7")
		json.NewEncoder(w).Encode([]map[string]any{{"Key": key, "Value": base64.StdEncoding.EncodeToString(v), "Flags": 0, "CreateIndex": 5, "ModifyIndex": 7, "LockIndex": 0}})
	case strings.HasPrefix(r.URL.Path, "/v1/kv/") && r.Method == http.MethodPut:
		body, _ := io.ReadAll(r.Body)
		a.kv[strings.TrimPrefix(r.URL.Path, "/v1/kv/")] = body
		io.WriteString(w, "true")
	case strings.HasPrefix(r.URL.Path, "/v1/health/service/"):
		name := strings.TrimPrefix(r.URL.Path, "/v1/health/service/")
		_, passingOnly := r.URL.Query()["passing"]
		tag := r.URL.Query().Get("tag")
		out := []map[string]any{}
		for _, in := range a.services[name] {
			if (passingOnly && !in.passing) || (tag != "" && !contains(in.tags, tag)) {
				continue
			}
			status := "passing"
			if !in.passing {
				status = "critical"
			}
			out = append(out, map[string]any{
				"Node":    map[string]any{"Node": "node-" + in.node, "Address": in.node},
				"Service": map[string]any{"ID": name + "-" + in.node, "Service": name, "Address": in.addr, "Port": in.port, "Tags": in.tags},
				"Checks":  []map[string]any{{"Status": status}},
			})
		}
		w.Header().Set("X-Consul-Index", "9")
		json.NewEncoder(w).Encode(out)
	default:
		http.NotFound(w, r)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func open(t *testing.T, cfg consul.Config) (*builtins.Registry, *builtinstest.Runtime, builtins.IntegrationStatus) {
	t.Helper()
	return builtinstest.OpenIntegration(t, consul.Register, &cfg)
}

func TestKVAndServices(t *testing.T) {
	a := &agent{token: "tok-consul-31f", kv: map[string][]byte{}, services: map[string][]instance{
		"payments": {
			{node: "10.0.0.1", addr: "10.0.1.1", port: 8080, tags: []string{"v2"}, passing: true},
			{node: "10.0.0.2", port: 8080, tags: []string{"v1"}, passing: true}, // no service address: the node's
			{node: "10.0.0.3", addr: "10.0.1.3", port: 8080, passing: false},
		},
	}}
	srv := httptest.NewServer(a)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	r, rt, st := open(t, consul.Config{Addr: addr, Token: a.token})
	if st.State != builtins.StateOK {
		t.Fatalf("check: %+v", st)
	}
	for _, c := range []struct{ expr, want string }{
		{`consul.get("app/flag")`, `None`},
		{`consul.put("app/flag", "on")`, `None`},
		{`consul.get("app/flag")`, `"on"`},
		{`consul.service("payments")`, `["10.0.1.1:8080", "10.0.0.2:8080"]`},
		{`consul.service("payments", tag="v2")`, `["10.0.1.1:8080"]`},
		{`consul.service("nothing")`, `[]`},
	} {
		v, err := rt.Eval(r, c.expr, nil)
		if err != nil || v.String() != c.want {
			t.Errorf("%s = %v, %v; want %s", c.expr, v, err, c.want)
		}
	}
	for _, c := range []struct{ expr, want string }{
		{`consul.get("")`, `consul.get: for parameter key: "": want a non-empty key`},
		{`consul.get("/abs")`, `not starting with /`},
		{`consul.service("")`, `consul.service: for parameter name: empty service name`},
	} {
		if _, err := rt.Eval(r, c.expr, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.expr, err, c.want)
		}
	}
}

// TestStates: a wrong token is failing and named as the agent's refusal; an
// agent that does not answer is failing; none configured is unconfigured;
// a step refused by the agent fails with code consul, the token redacted.
func TestStates(t *testing.T) {
	a := &agent{token: "right-token-9", kv: map[string][]byte{}}
	srv := httptest.NewServer(a)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	r, rt, st := open(t, consul.Config{Addr: addr, Token: "wrong-token-9"})
	if st.State != builtins.StateFailing || !strings.Contains(st.Error, "Permission denied") || strings.Contains(st.Error, "wrong-token-9") {
		t.Errorf("wrong token: %+v", st)
	}
	if _, err := rt.Eval(r, `consul.get("k")`, nil); err == nil || !strings.Contains(err.Error(), "consul at "+addr) || !strings.Contains(err.Error(), "403") {
		t.Errorf("refused step: %v", err)
	}
	if _, _, st := open(t, consul.Config{Addr: "127.0.0.1:1"}); st.State != builtins.StateFailing || !strings.Contains(st.Error, "agent at 127.0.0.1:1") {
		t.Errorf("down: %+v", st)
	}
	if _, _, st := open(t, consul.Config{}); st.State != builtins.StateUnconfigured {
		t.Errorf("none: %+v", st)
	}
	if _, _, st := open(t, consul.Config{Addr: "consul"}); st.State != builtins.StateFailing || !strings.Contains(st.Error, `addr "consul": want host:port`) {
		t.Errorf("bad addr: %+v", st)
	}
}

// TestCheckWithinItsDeadline: an agent that accepts the connection and never
// answers fails the check when its context ends, rather than holding the
// node's start.
func TestCheckWithinItsDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	inst, err := consul.Integration.Open(context.Background(), &consul.Config{Addr: strings.TrimPrefix(srv.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- inst.(builtins.Checker).Check(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a silent agent passed the check")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the check outlived its deadline")
	}
}
