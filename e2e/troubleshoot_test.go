package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// lineSink collects what listeners receive.
type lineSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *lineSink) add(l string) {
	s.mu.Lock()
	s.lines = append(s.lines, l)
	s.mu.Unlock()
}

func (s *lineSink) with(sub string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// logstash listens as Logstash's tcp input with the json_lines codec does:
// newline-delimited JSON on TCP.
func logstash(t *testing.T) (addr string, got *lineSink) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = &lineSink{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					if !json.Valid(sc.Bytes()) {
						got.add("INVALID " + sc.Text())
						continue
					}
					got.add(sc.Text())
				}
			}()
		}
	}()
	return ln.Addr().String(), got
}

// dogstatsd listens as a DogStatsD agent does: metric lines on UDP.
func dogstatsd(t *testing.T) (addr string, got *lineSink) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	got = &lineSink{}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			for l := range strings.SplitSeq(string(buf[:n]), "\n") {
				if l != "" {
					got.add(l)
				}
			}
		}
	}()
	return conn.LocalAddr().String(), got
}

// TestTroubleshooting is docs/troubleshooting.md on a 3-node cluster: a
// customer's checkout fails (the partner refuses the payment); from the
// customer's id, ctl finds the run, shows every SQL, HTTP and AMQP call with
// the node that made it, the run's log lines from every node with one trace
// id, and replays the run offline to the same failure. Meanwhile the nodes'
// lines reach a Logstash listener and their metrics a DogStatsD one.
func TestTroubleshooting(t *testing.T) {
	conn, err := amqp091.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatalf("the test needs RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("drover-example-confirmations", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	payments := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ Customer string }
		json.NewDecoder(r.Body).Decode(&p)
		if strings.HasPrefix(p.Customer, "acme") {
			w.WriteHeader(http.StatusPaymentRequired)
			fmt.Fprint(w, `{"error":"card expired"}`)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer payments.Close()
	lsAddr, shipped := logstash(t)
	ddAddr, metrics := dogstatsd(t)
	t.Setenv("RABBIT_PASSWORD", "guest")
	t.Setenv("LOGSTASH_ADDR", lsAddr)
	t.Setenv("STATSD_ADDR", ddAddr)
	config, err := filepath.Abs("../scripts/examples/troubleshooting/drover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nodes := startCluster(t, 3, "--config", config)
	env := []string{"DROVER_URL=" + nodes[0].url}
	if out, errOut, code := ctl(t, env, "deploy", "checkout", "scripts/examples/troubleshooting/checkout.star"); code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s", code, out, errOut)
	}
	stamp := time.Now().Format("150405.000000")
	acme, other := "acme-"+stamp, "initech-"+stamp
	for i, c := range []string{other, acme, other} {
		input := fmt.Sprintf(`{"customer":%q,"sku":"a-1","qty":2,"payments":%q}`, c, payments.URL+"/pay")
		_, errOut, code := ctl(t, []string{"DROVER_URL=" + nodes[i].url}, "run", "checkout", "--input", input)
		if want := map[bool]int{true: 1, false: 0}[c == acme]; code != want {
			t.Fatalf("run for %s: exit %d, want %d\n%s", c, code, want, errOut)
		}
	}

	// 1. The customer's runs.
	out, errOut, code := ctl(t, env, "runs", "ls", "--attr", "customer="+acme)
	ids := regexp.MustCompile(`(?m)^([0-9A-Z]{26}) .*failed`).FindAllStringSubmatch(out, -1)
	if code != 0 || len(ids) != 1 {
		t.Fatalf("runs ls: exit %d, want one failed run\n%s%s", code, out, errOut)
	}
	id := ids[0][1]

	// 2. The run: every call with its node, its log lines, its trace.
	out, errOut, code = ctl(t, env, "runs", "show", id)
	if code != 0 {
		t.Fatalf("runs show: exit %d\n%s", code, errOut)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`Status: +failed`),
		regexp.MustCompile(`Error: +fail: payment refused with HTTP 402`),
		regexp.MustCompile(`Trace: +[0-9a-f]{32}`),
		regexp.MustCompile(`\n1 +sql\.query +n[123] `),
		regexp.MustCompile(`\n2 +http\.post +n[123] `),
		regexp.MustCompile(`error +n[123] +after 2 +payment refused .*status=402`),
		regexp.MustCompile(`warn +n[123] +- +run ended .*status="failed"`),
	} {
		if !want.MatchString(out) {
			t.Errorf("runs show lacks %s:\n%s", want, out)
		}
	}
	// The same lines alone, from any node, with one trace id.
	out, _, code = ctl(t, []string{"DROVER_URL=" + nodes[2].url}, "logs", id, "--json")
	traces := map[string]bool{}
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var line struct {
			TraceID string            `json:"trace_id"`
			Attrs   map[string]string `json:"attrs"`
		}
		json.Unmarshal([]byte(l), &line)
		traces[line.TraceID] = true
	}
	if code != 0 || len(traces) != 1 || strings.Count(out, "\n") < 4 {
		t.Errorf("logs: exit %d, trace ids %v\n%s", code, traces, out)
	}
	// A customer's lines read back across the cluster: none of another's.
	out, _, code = ctl(t, env, "logs", "--attr", "customer="+acme, "--since", "10m")
	if code != 0 || !strings.Contains(out, "payment refused") || strings.Contains(out, other) {
		t.Errorf("logs --attr: exit %d\n%s", code, out)
	}

	// 3. A local replay, offline, with nothing configured.
	export, errOut, code := ctl(t, env, "runs", "export", id)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(file, []byte(export), 0o644); err != nil {
		t.Fatal(err)
	}
	offline := []string{"DROVER_URL=", "DROVER_CONFIG=", "DROVER_DATA=" + t.TempDir(), "DROVER_BACKGROUND=off"}
	out, errOut, code = ctl(t, offline, "replay", "--from", file, "--json")
	var rep struct {
		Matches bool `json:"matches"`
		Steps   int  `json:"steps"`
	}
	// It fails as the run did (exit 1), matching its journal.
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || !rep.Matches || rep.Steps != 2 {
		t.Fatalf("offline replay: exit %d %+v\n%s%s", code, rep, out, errOut)
	}

	// Shipped and measured.
	deadline := time.Now().Add(30 * time.Second)
	for len(shipped.with(id)) < 4 || len(metrics.with("drover.run.ended")) == 0 || len(metrics.with("builtin:sql.query")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d lines of the run at Logstash, metrics %d lines:\n%s", len(shipped.with(id)), len(metrics.with("")), strings.Join(metrics.with(""), "\n"))
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if bad := shipped.with("INVALID"); len(bad) > 0 {
		t.Errorf("lines at Logstash that are not JSON: %v", bad)
	}
	if len(shipped.with(`"message":"node started"`)) < 3 {
		t.Errorf("Logstash has not every node's own lines: %d", len(shipped.with(`"message":"node started"`)))
	}
	if m := metrics.with(acme); len(m) > 0 {
		t.Errorf("a customer id in the metrics: %v", m)
	}
}
