package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/cli"
)

// TestLogs: ctl logs reads one run's lines, reads back a customer's by
// attribute and level, prints JSON, and refuses bad queries with exit 2.
func TestLogs(t *testing.T) {
	isolate(t)
	acme := runID(t, ctl(t, "run", "testdata/logs.star", "--input", `{"customer":"acme","order":7}`))
	other := runID(t, ctl(t, "run", "testdata/logs.star", "--input", `{"customer":"globex","order":8}`))

	r := ctl(t, "logs", acme)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != cli.ExitOK || len(lines) != 4 || !strings.Contains(lines[0], "run started") ||
		!strings.Contains(lines[1], " INFO local "+acme+" checking order customer=acme order=7 pos=") ||
		!strings.Contains(lines[2], " WARN local "+acme+" stock low customer=acme") || !strings.Contains(lines[3], "run ended") {
		t.Fatalf("logs RUN:\n%v", r)
	}
	r = ctl(t, "runs", "show", acme)
	if r.code != cli.ExitOK || !regexp.MustCompile(`Trace: +[0-9a-f]{32}\n`).MatchString(r.stdout) ||
		!regexp.MustCompile(`\n\+[0-9.]+m?s +warn +local +- +stock low pos="logs.star:5:13" sku="a1"\n`).MatchString(r.stdout) {
		t.Fatalf("runs show: no trace or log lines:\n%v", r)
	}
	r = ctl(t, "logs", "--attr", "customer=acme", "--since", "1h", "--level", "warn", "--json")
	var l struct {
		Run     string            `json:"run"`
		Message string            `json:"message"`
		TraceID string            `json:"trace_id"`
		Attrs   map[string]string `json:"attrs"`
	}
	if r.code != cli.ExitOK || strings.Count(r.stdout, "\n") != 1 || json.Unmarshal([]byte(r.stdout), &l) != nil ||
		l.Run != acme || l.Message != "stock low" || l.Attrs["customer"] != "acme" || len(l.TraceID) != 32 || strings.Contains(r.stdout, other) {
		t.Fatalf("logs --attr --level warn --json:\n%v", r)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"logs"}, cli.ExitUsage, "logs of what?"},
		{[]string{"logs", "--attr", "customer=acme"}, cli.ExitUsage, "need since"},
		{[]string{"logs", "--attr", "customer"}, cli.ExitUsage, "want name=value"},
		{[]string{"logs", acme, "--level", "loud"}, cli.ExitUsage, `level "loud"`},
		{[]string{"logs", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"}, cli.ExitFailure, "unknown run"},
	} {
		if r := ctl(t, tt.args...); r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: want exit %d with %q:\n%v", tt.args, tt.code, tt.want, r)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsFollowOverHTTP: ctl logs --follow against a node's API tails one
// customer's lines live, and none of another's.
func TestLogsFollowOverHTTP(t *testing.T) {
	dir := isolate(t)
	n := startNode(t, dir)
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.MainContext(ctx, []string{"--server", srv.URL, "logs", "--attr", "customer=acme", "--follow"}, strings.NewReader(""), &out, &errb)
	}()
	var ids []string
	bustest.PollUntil(t, func() bool { // until the tail is live
		ids = append(ids, runID(t, ctl(t, "--server", srv.URL, "run", "testdata/logs.star", "--input", `{"customer":"acme","order":1}`)))
		return strings.Contains(out.String(), "checking order")
	})
	other := runID(t, ctl(t, "--server", srv.URL, "run", "testdata/logs.star", "--input", `{"customer":"globex","order":2}`))
	last := runID(t, ctl(t, "--server", srv.URL, "run", "testdata/logs.star", "--input", `{"customer":"acme","order":3}`))
	bustest.PollUntil(t, func() bool { return strings.Contains(out.String(), last+" run ended") })
	bustest.PollUntil(t, func() bool { return strings.Contains(out.String(), last+" checking order") })
	cancel()
	select {
	case code := <-done:
		if code != cli.ExitInterrupted {
			t.Errorf("exit %d, stderr %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ctl logs --follow did not stop when interrupted")
	}
	if s := out.String(); strings.Contains(s, other) || !strings.Contains(s, last+" checking order customer=acme order=3") {
		t.Fatalf("tail:\n%s", s)
	}
}
