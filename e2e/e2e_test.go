// Package e2e tests Drover as a user runs it: the real ctl and engine binaries,
// built from this tree, started as processes and stopped by signal.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drover-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, cmd := range []string{"ctl", "engine"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "../cmd/"+cmd).CombinedOutput()
		if err != nil {
			os.Stderr.Write(out)
			panic("build " + cmd + ": " + err.Error())
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ctl runs the ctl binary and returns stdout, stderr and the exit code.
func ctl(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	return ctlFiles(t, env, nil, args...)
}

// ctlFiles is ctl with extra open files, descriptors 3 and up.
func ctlFiles(t *testing.T, env []string, extra []*os.File, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "ctl"), args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = extra
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

var runIDRe = regexp.MustCompile(`\b[0-9A-HJKMNP-TV-Z]{26}\b`)

// TestReadmeEmbedded is the README's first command on a fresh data dir, then
// the commands that find the run again.
func TestReadmeEmbedded(t *testing.T) {
	_, env := backgroundDir(t)
	out, errOut, code := ctl(t, env, "run", "scripts/examples/hello.star")
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["greeting"] != "hello, world" {
		t.Fatalf("stdout is not hello's result: %q (%v)", out, err)
	}
	id := runIDRe.FindString(errOut)
	if id == "" {
		t.Fatalf("no run id on stderr: %q", errOut)
	}
	out, _, code = ctl(t, env, "runs", "ls", "--attr", "customer=world")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "completed") {
		t.Fatalf("runs ls (exit %d):\n%s", code, out)
	}
	out, _, code = ctl(t, env, "runs", "show", id)
	for _, want := range []string{"kv.get", "kv.put", "time.now", "hello.star:12:11"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("runs show lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	_, errOut, code = ctl(t, env, "run", "testdata/scripts/fail.star")
	if code != 1 || !strings.Contains(errOut, "card declined for 3 items") || !strings.Contains(errOut, "fail.star:6:13") {
		t.Fatalf("failing script: exit %d\n%s", code, errOut)
	}
	_, errOut, code = ctl(t, env, "run", "scripts/examples/hello.star", "--input", "{nope")
	if code != 2 || !strings.Contains(errOut, "--input is not JSON") {
		t.Fatalf("bad input: exit %d\n%s", code, errOut)
	}
}

// engineProc is a running engine process.
type engineProc struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	// exited is closed when the process has exited; err is then its exit.
	exited chan struct{}
	err    error
}

// wait waits for the process to exit and returns how it exited.
func (p *engineProc) wait() error {
	<-p.exited
	return p.err
}

// syncBuffer is a bytes.Buffer safe for the log reader and the test.
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

// startEngine starts an engine process on dataDir and returns it once it
// serves its API. It must be called from the test's goroutine.
func startEngine(t *testing.T, dataDir string, args ...string) *engineProc {
	t.Helper()
	p, err := launchEngine(t, dataDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launchEngine is startEngine for any goroutine: it returns an error rather
// than failing the test. The process is killed when the test ends.
func launchEngine(t testing.TB, dataDir string, args ...string) (*engineProc, error) {
	args = append([]string{"--name", "n1", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0"}, args...)
	cmd := exec.Command(filepath.Join(binDir, "engine"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan engines if the test binary dies
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &engineProc{cmd: cmd, logs: &syncBuffer{}, exited: make(chan struct{})}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		httpRe := regexp.MustCompile(`"http":"(http://[^"]+)"`)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if m := httpRe.FindStringSubmatch(line); m != nil {
				select {
				case urlCh <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.exited })
	select {
	case p.url = <-urlCh:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("engine %v exited before serving: %v\n%s", args, p.err, p.logs)
	case <-time.After(60 * time.Second): // a cluster's JetStream may take a while on a loaded machine
		return nil, fmt.Errorf("engine %v did not serve within 60s\n%s", args, p.logs)
	}
}

// TestEngineServerAndCleanShutdown drives a real engine process with ctl
// --server, stops it with SIGTERM while a run sleeps, and checks after a
// restart on the same data dir that everything journaled is still there.
func TestEngineServerAndCleanShutdown(t *testing.T) {
	dir := t.TempDir()
	eng := startEngine(t, dir, "--grace", "300ms")
	env := []string{"DROVER_URL=" + eng.url}
	out, errOut, code := ctl(t, env, "run", "scripts/examples/hello.star", "--input", `{"who":"e2e"}`)
	if code != 0 || !strings.Contains(out, "hello, e2e") {
		t.Fatalf("run via server: exit %d\n%s\n%s", code, out, errOut)
	}
	script := filepath.Join(t.TempDir(), "slow.star")
	os.WriteFile(script, []byte("def main(input):\n    kv.put('slow', 1)\n    sleep('1h')\n    return 'never'\n"), 0o644)
	id := detachUntilSleeping(t, env, script)
	eng.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-eng.exited:
		if eng.err != nil {
			t.Fatalf("engine exit after SIGTERM: %v\n%s", eng.err, eng.logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("engine did not stop within 20s of SIGTERM\n%s", eng.logs)
	}
	if !strings.Contains(eng.logs.String(), "run parked until its timer fires") {
		t.Errorf("the sleeping run was not parked:\n%s", eng.logs)
	}
	eng2 := startEngine(t, dir)
	env = []string{"DROVER_URL=" + eng2.url}
	out, _, code = ctl(t, env, "runs", "show", id, "--json")
	var d struct {
		Status string `json:"status"`
		Steps  []struct {
			Builtin, Outcome string
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 {
		t.Fatalf("show after restart: exit %d %v\n%s", code, err, out)
	}
	if d.Status != "running" || len(d.Steps) != 2 || d.Steps[0].Outcome != "ok" || d.Steps[1].Builtin != "sleep" || d.Steps[1].Outcome != "pending" {
		t.Fatalf("after restart: %+v", d)
	}
	out, _, code = ctl(t, env, "runs", "ls", "--status", "completed")
	if code != 0 || !strings.Contains(out, "hello") {
		t.Fatalf("completed run lost after restart:\n%s", out)
	}
	_, errOut, code = ctl(t, env, "runs", "show", "01ZZZZZZZZZZZZZZZZZZZZZZZZ")
	if code != 1 || !strings.Contains(errOut, "unknown run") {
		t.Fatalf("unknown run: exit %d %s", code, errOut)
	}
}

// detachUntilSleeping starts script (a kv.put, then a durable sleep) with
// ctl run --detach, polls until the run is inside sleep (2 steps called),
// and returns its id.
func detachUntilSleeping(t *testing.T, env []string, script string) string {
	t.Helper()
	out, errOut, code := ctl(t, env, "run", script, "--detach")
	id := strings.TrimSpace(out)
	if code != 0 || !runIDRe.MatchString(id) {
		t.Fatalf("detach: exit %d %q %s", code, out, errOut)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, _ = ctl(t, env, "runs", "show", id, "--json")
		if strings.Count(out, `"builtin"`) == 2 {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("run never reached sleep:\n%s", out)
		}
	}
}
