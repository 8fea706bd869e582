package logship

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A real Logstash or Elasticsearch cannot run here: the tests use
// stand-ins that speak their documented protocols.

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s, still not: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fast is a backoff for tests.
func fast(int) time.Duration { return time.Millisecond }

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// logstashStandIn is Logstash's tcp input with the json_lines codec: it
// reads newline-delimited JSON objects from any number of connections.
// One that does not read accepts connections and never reads them.
type logstashStandIn struct {
	ln   net.Listener
	read bool
	wg   sync.WaitGroup

	mu    sync.Mutex
	lines []string
	bad   []string // lines that are not JSON objects
	conns []net.Conn
}

func newLogstashStandIn(t testing.TB, addr string, read bool) *logstashStandIn {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &logstashStandIn{ln: ln, read: read}
	l.wg.Go(l.accept)
	t.Cleanup(l.close)
	return l
}

func (l *logstashStandIn) addr() string { return l.ln.Addr().String() }

func (l *logstashStandIn) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
		if l.read {
			l.wg.Go(func() { l.readLines(c) })
		}
	}
}

func (l *logstashStandIn) readLines(c net.Conn) {
	r := bufio.NewReaderSize(c, 1<<20)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return // a line cut by a closed connection is not one
		}
		line = strings.TrimSuffix(line, "\n")
		var obj map[string]any
		l.mu.Lock()
		if json.Unmarshal([]byte(line), &obj) != nil {
			l.bad = append(l.bad, line)
		}
		l.lines = append(l.lines, line)
		l.mu.Unlock()
	}
}

func (l *logstashStandIn) received() (lines, bad []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...), append([]string(nil), l.bad...)
}

func (l *logstashStandIn) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// hangUp closes the connections accepted so far, as a Logstash restarting
// its input does.
func (l *logstashStandIn) hangUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func (l *logstashStandIn) close() {
	l.ln.Close()
	l.mu.Lock()
	for _, c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// esStandIn is Elasticsearch's _bulk API as documented: POST /_bulk with
// Content-Type application/x-ndjson, an action line and a document line
// per item; the answer has "errors" and one item per action, with its
// status, and the X-Elastic-Product header the client checks. A document
// with "reject":true is refused (400); one with "busy":true is refused
// with 429 the first time.
type esStandIn struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	user     string              // basic authentication expected, if set
	password string              //
	status   func(n int) int     // the status of request n (1, 2...) if not 200
	notES    bool                // leave the product header out
	docs     map[string][]string // by index
	busy     map[string]bool     // documents answered 429 once
	requests int
}

func newESStandIn(t testing.TB) *esStandIn {
	e := &esStandIn{t: t, docs: map[string][]string{}, busy: map[string]bool{}}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	return e
}

// start serves on addr ("": any port).
func (e *esStandIn) start(addr string) *esStandIn {
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			e.t.Fatal(err)
		}
		e.srv.Listener.Close()
		e.srv.Listener = ln
	}
	e.srv.Start()
	e.t.Cleanup(e.srv.Close)
	return e
}

func (e *esStandIn) url() string { return e.srv.URL }

func (e *esStandIn) index(name string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.docs[name]...)
}

func (e *esStandIn) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, d := range e.docs {
		n += len(d)
	}
	return n
}

func (e *esStandIn) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests++
	if !e.notES {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/_bulk" {
		http.Error(w, `{"error":"no handler"}`, http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") {
		e.t.Errorf("_bulk with Content-Type %q, want application/x-ndjson", ct)
	}
	if e.user != "" {
		if u, p, _ := r.BasicAuth(); u != e.user || p != e.password {
			// Echoes what it was given, as a careless proxy might: the
			// shipper must redact it.
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":{"type":"security_exception","reason":"unable to authenticate user [%s] with password [%s]"},"status":401}`, u, p)
			return
		}
	}
	if e.status != nil {
		if s := e.status(e.requests); s != 0 && s != http.StatusOK {
			w.WriteHeader(s)
			fmt.Fprintf(w, `{"error":{"type":"stand_in","reason":"status %d"},"status":%d}`, s, s)
			return
		}
	}
	var body bytes.Buffer
	body.ReadFrom(r.Body)
	lines := strings.Split(strings.TrimSuffix(body.String(), "\n"), "\n")
	if len(lines)%2 != 0 {
		e.t.Errorf("_bulk body of %d lines: want pairs of action and document", len(lines))
		http.Error(w, `{"error":"odd lines"}`, http.StatusBadRequest)
		return
	}
	type outcome struct {
		Index  string `json:"_index"`
		Status int    `json:"status"`
		Result string `json:"result,omitempty"`
		Error  any    `json:"error,omitempty"`
	}
	var items []map[string]outcome
	errs := false
	for i := 0; i < len(lines); i += 2 {
		var action struct {
			Index *struct {
				Index string `json:"_index"`
			} `json:"index"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &action); err != nil || action.Index == nil || action.Index.Index == "" {
			e.t.Errorf("_bulk action %q: want {\"index\":{\"_index\":...}}", lines[i])
			continue
		}
		doc := lines[i+1]
		var fields map[string]any
		o := outcome{Index: action.Index.Index, Status: http.StatusCreated, Result: "created"}
		switch {
		case json.Unmarshal([]byte(doc), &fields) != nil:
			o = outcome{Index: o.Index, Status: 400, Error: map[string]string{"type": "x_content_parse_exception", "reason": "not JSON"}}
		case fields["reject"] == true:
			o = outcome{Index: o.Index, Status: 400, Error: map[string]string{"type": "mapper_parsing_exception", "reason": "failed to parse field [reject]"}}
		case fields["busy"] == true && !e.busy[doc]:
			e.busy[doc] = true
			o = outcome{Index: o.Index, Status: 429, Error: map[string]string{"type": "es_rejected_execution_exception", "reason": "rejected execution"}}
		default:
			e.docs[o.Index] = append(e.docs[o.Index], doc)
		}
		errs = errs || o.Error != nil
		items = append(items, map[string]outcome{"index": o})
	}
	json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": errs, "items": items})
}
