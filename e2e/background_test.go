package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// backgroundDir is a data dir for ctl commands that start a background node;
// the node is stopped before the dir is removed.
func backgroundDir(t *testing.T) (dir string, env []string) {
	t.Helper()
	dir = t.TempDir()
	// 2m, not the default hour: a test run interrupted before its cleanup
	// leaves nodes that stop soon.
	env = []string{"DROVER_DATA=" + dir, "DROVER_URL=", "DROVER_BACKGROUND=2m"}
	t.Cleanup(func() { ctl(t, env, "background", "stop") })
	return dir, env
}

// backgroundPID is the pid that dir's ctl-node.json names, or 0.
func backgroundPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "ctl-node.json"))
	if err != nil {
		return 0
	}
	var info struct{ PID int }
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatalf("ctl-node.json: %v: %s", err, b)
	}
	return info.PID
}

// alive reports whether process pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitGone polls until process pid has exited.
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after %s", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var startedRe = regexp.MustCompile(`started a background node on .* \(pid (\d+)\)`)

// TestBackgroundNode: the first command starts the background node, the next
// ones use it (the same process, no second start), --detach works with it,
// and ctl background stop stops it.
func TestBackgroundNode(t *testing.T) {
	dir, env := backgroundDir(t)
	// ctl is given a pipe as descriptor 3 (as a shell's 3>&1): the node it
	// starts must not hold it, or a reader would wait for the node's end.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	out, errOut, code := ctlFiles(t, env, []*os.File{pw}, "run", "scripts/examples/hello.star")
	pw.Close()
	m := startedRe.FindStringSubmatch(errOut)
	if code != 0 || m == nil || !strings.Contains(out, "hello, world") {
		t.Fatalf("first run: exit %d, no start announced?\n%s\n%s", code, out, errOut)
	}
	pr.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := pr.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("descriptor 3 is still open after ctl exited (read %d, %v): the background node inherited it", n, err)
	}
	pid, _ := strconv.Atoi(m[1])
	if backgroundPID(t, dir) != pid || !alive(pid) {
		t.Fatalf("ctl-node.json names pid %d, announced %d (alive %v)", backgroundPID(t, dir), pid, alive(pid))
	}
	out, errOut, code = ctl(t, env, "run", "scripts/examples/hello.star")
	if code != 0 || strings.Contains(errOut, "background node") || !strings.Contains(out, `"visits": 2`) {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := backgroundPID(t, dir); got != pid {
		t.Fatalf("second run: background pid %d, want %d", got, pid)
	}

	script := filepath.Join(t.TempDir(), "slow.star")
	os.WriteFile(script, []byte("def main(input):\n    sleep('300ms')\n    return 'slept'\n"), 0o644)
	out, errOut, code = ctl(t, env, "run", script, "--detach")
	id := strings.TrimSpace(out)
	if code != 0 || !runIDRe.MatchString(id) {
		t.Fatalf("detach: exit %d %q %s", code, out, errOut)
	}
	out, errOut, code = ctl(t, env, "runs", "wait", id, "--json")
	if code != 0 || !strings.Contains(out, `"result": "slept"`) {
		t.Fatalf("runs wait: exit %d\n%s\n%s", code, out, errOut)
	}

	out, _, code = ctl(t, env, "background", "status")
	if code != 0 || !strings.Contains(out, "pid "+m[1]) || !strings.Contains(out, "sync=always") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	out, _, code = ctl(t, env, "background", "stop")
	if code != 0 || !strings.Contains(out, "stopped the background node") {
		t.Fatalf("stop: exit %d\n%s", code, out)
	}
	waitGone(t, pid, 5*time.Second)
	if _, err := os.Stat(filepath.Join(dir, "ctl-node.json")); !os.IsNotExist(err) {
		t.Fatalf("ctl-node.json left after stop: %v", err)
	}
	if out, _, _ = ctl(t, env, "background", "status"); !strings.Contains(out, "no background node") {
		t.Fatalf("status after stop:\n%s", out)
	}
}

// sleepingInBackground starts, detached, a run that puts kv "before" then
// sleeps d and returns result, and waits until it sleeps on dir's
// background node; it returns the run's id and the node's pid.
func sleepingInBackground(t *testing.T, env []string, dir, d, result string) (id string, pid int) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "slow.star")
	os.WriteFile(script, []byte(fmt.Sprintf("def main(input):\n    kv.put('before', 1)\n    sleep(%q)\n    return %q\n", d, result)), 0o644)
	id = detachUntilSleeping(t, env, script)
	return id, backgroundPID(t, dir)
}

// TestBackgroundNodeCrash: a background node killed with SIGKILL while a run
// sleeps leaves a stale ctl-node.json; the next command starts a new node,
// which continues the run to its end.
func TestBackgroundNodeCrash(t *testing.T) {
	dir, env := backgroundDir(t)
	id, pid := sleepingInBackground(t, env, dir, "2s", "woke")
	syscall.Kill(pid, syscall.SIGKILL)
	waitGone(t, pid, 5*time.Second)

	out, errOut, code := ctl(t, env, "runs", "wait", id, "--json")
	if code != 0 || !strings.Contains(out, `"result": "woke"`) || !startedRe.MatchString(errOut) {
		t.Fatalf("runs wait after the crash: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := backgroundPID(t, dir); got == pid || got == 0 {
		t.Fatalf("background pid after the crash: %d (crashed one %d)", got, pid)
	}
	out, _, _ = ctl(t, env, "runs", "show", id, "--json")
	if n := strings.Count(out, `"builtin": "kv.put"`); n != 1 {
		t.Fatalf("kv.put journaled %d times after recovery:\n%s", n, out)
	}
}

// TestBackgroundNodeSettingsAndIdle: a command asking for another --sync
// restarts the node; a node given --background 1s stops on its own.
func TestBackgroundNodeSettingsAndIdle(t *testing.T) {
	dir, env := backgroundDir(t)
	if _, errOut, code := ctl(t, env, "runs", "ls"); code != 0 || !startedRe.MatchString(errOut) {
		t.Fatalf("ls: exit %d\n%s", code, errOut)
	}
	first := backgroundPID(t, dir)
	_, errOut, code := ctl(t, env, "--sync", "interval", "--background", "1s", "run", "scripts/examples/hello.star")
	if code != 0 || !strings.Contains(errOut, "restarting the background node") || !strings.Contains(errOut, "other settings: sync=always") {
		t.Fatalf("run with --sync interval: exit %d\n%s", code, errOut)
	}
	waitGone(t, first, 5*time.Second)
	second := backgroundPID(t, dir)
	if second == 0 || second == first {
		t.Fatalf("no new background node: %d (first %d)", second, first)
	}
	waitGone(t, second, 30*time.Second) // idle for 1s: it stops
	if _, err := os.Stat(filepath.Join(dir, "ctl-node.json")); !os.IsNotExist(err) {
		t.Fatalf("ctl-node.json left after the idle stop: %v", err)
	}
}

// TestBackgroundNodeConcurrentStart: commands started together on a fresh
// data dir share one background node.
func TestBackgroundNodeConcurrentStart(t *testing.T) {
	dir, env := backgroundDir(t)
	var wg sync.WaitGroup
	errs := make([]string, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, errOut, code := ctl(t, env, "run", "scripts/examples/hello.star")
			if code != 0 || !strings.Contains(out, "hello, world") {
				errs[i] = "exit " + strconv.Itoa(code) + "\n" + out + errOut
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Fatal(e)
		}
	}
	out, _, _ := ctl(t, env, "runs", "ls")
	if n := strings.Count(out, "completed"); n != 4 {
		t.Fatalf("%d completed runs, want 4:\n%s", n, out)
	}
	if backgroundPID(t, dir) == 0 {
		t.Fatal("no background node")
	}
}

// TestBackgroundOffAndBadValues: --background off runs the node in ctl's
// process, stopping a background node that holds the data dir; a bad
// --background or DROVER_BACKGROUND is a usage error before anything starts.
func TestBackgroundOffAndBadValues(t *testing.T) {
	dir, env := backgroundDir(t)
	for _, tt := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--background", "soon", "runs", "ls"}, `invalid argument "soon" for "--background"`},
		{nil, []string{"--background", "0s", "runs", "ls"}, "want off, or how long"},
		{nil, []string{"--background", "500ms", "runs", "ls"}, "at least 1s"},
		{[]string{"DROVER_BACKGROUND=forever"}, []string{"runs", "ls"}, `DROVER_BACKGROUND="forever"`},
	} {
		_, errOut, code := ctl(t, append(append([]string{}, env...), tt.env...), tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v %v: exit %d, want 2 and %q\n%s", tt.env, tt.args, code, tt.want, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); !os.IsNotExist(err) {
		t.Fatalf("a refused command touched the data dir: %v", err)
	}

	if _, errOut, code := ctl(t, env, "run", "scripts/examples/hello.star"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, errOut)
	}
	pid := backgroundPID(t, dir)
	out, errOut, code := ctl(t, env, "--background", "off", "runs", "ls")
	if code != 0 || !strings.Contains(errOut, "stopping the background node") || !strings.Contains(out, "completed") {
		t.Fatalf("--background off: exit %d\n%s\n%s", code, out, errOut)
	}
	waitGone(t, pid, 5*time.Second)
	_, errOut, code = ctl(t, env, "--background", "off", "run", "scripts/examples/hello.star", "--detach")
	if code != 2 || !strings.Contains(errOut, "--detach needs a node that outlives ctl") {
		t.Fatalf("--detach with --background off: exit %d\n%s", code, errOut)
	}
}

// TestBackgroundStopChecksThePid: a ctl-node.json left by a node that died
// names a pid that may since belong to another process: ctl background stop
// and --background off leave that process alone; stop removes the stale file.
func TestBackgroundStopChecksThePid(t *testing.T) {
	dir, env := backgroundDir(t)
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	stale := fmt.Sprintf(`{"pid":%d,"url":"http://127.0.0.1:1","build":"x","settings":"x","idle":"1h0m0s"}`, other.Process.Pid)
	for _, args := range [][]string{{"background", "stop"}, {"--background", "off", "runs", "ls"}} {
		if err := os.WriteFile(filepath.Join(dir, "ctl-node.json"), []byte(stale), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := ctl(t, env, args...)
		if code != 0 || strings.Contains(out+errOut, "stopp") {
			t.Fatalf("%v with a stale ctl-node.json: exit %d\n%s\n%s", args, code, out, errOut)
		}
		if !alive(other.Process.Pid) {
			t.Fatalf("%v killed the unrelated process the stale file named", args)
		}
		if _, err := os.Stat(filepath.Join(dir, "ctl-node.json")); args[0] == "background" && !os.IsNotExist(err) {
			t.Fatalf("%v left the stale ctl-node.json: %v", args, err)
		}
	}
}

// TestBackgroundNodeStaysWhileStepsRun: a node idle for its --background
// time while a detached run executes a step stays up until the step ends,
// and the run completes.
func TestBackgroundNodeStaysWhileStepsRun(t *testing.T) {
	dir, env := backgroundDir(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second) // the step's duration, not synchronisation
		w.Write([]byte("done"))
	}))
	defer slow.Close()
	script := filepath.Join(t.TempDir(), "slow.star")
	os.WriteFile(script, []byte("def main(input):\n    return http.get(input, timeout = '20s').body\n"), 0o644)
	out, errOut, code := ctl(t, env, "--background", "1s", "run", script, "--input", fmt.Sprintf("%q", slow.URL), "--detach")
	id := strings.TrimSpace(out)
	if code != 0 || !runIDRe.MatchString(id) {
		t.Fatalf("detach: exit %d %q %s", code, out, errOut)
	}
	pid := backgroundPID(t, dir)
	waitGone(t, pid, 30*time.Second) // idle once the step has ended
	out, errOut, code = ctl(t, env, "runs", "show", id, "--json")
	if code != 0 || !strings.Contains(out, `"status": "completed"`) || !strings.Contains(out, `"result": "done"`) {
		t.Fatalf("the run did not complete before the node stopped: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestBackgroundStartInterrupted: ctl waiting for another ctl to start the
// node (the start lock held) stops at Ctrl-C, with exit 130.
func TestBackgroundStartInterrupted(t *testing.T) {
	dir, env := backgroundDir(t)
	lock, err := os.OpenFile(filepath.Join(dir, "ctl-node.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// Interrupt ctl once it has the lock file open, waiting for it.
	cmd, stderr := startCtlUntil(t, env, "open the start lock", func(pid int) bool { return holdsFile(pid, lock.Name()) }, "runs", "ls")
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 || !strings.Contains(stderr.String(), "interrupted") {
			t.Fatalf("interrupted while waiting for the lock: %v\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("ctl did not stop within 5s of Ctrl-C\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "ctl-node.json")); !os.IsNotExist(err) {
		t.Fatalf("a node was started after the interrupt: %v", err)
	}
}

// holdsFile reports whether process pid has path open.
func holdsFile(pid int, path string) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && target == path {
			return true
		}
	}
	return false
}

// TestBackgroundNodeDiesUnderACommand: a command waiting on the background
// node when it dies says that the node stopped and where its log is.
func TestBackgroundNodeDiesUnderACommand(t *testing.T) {
	dir, env := backgroundDir(t)
	id, pid := sleepingInBackground(t, env, dir, "1h", "never")
	// Kill the node once the command has a connection open (to the node:
	// it has found it).
	cmd, stderr := startCtlUntil(t, env, "connect", connectedTo, "runs", "wait", id)
	syscall.Kill(pid, syscall.SIGKILL)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "the background node on "+dir+" stopped") {
		t.Fatalf("runs wait when the node died: %v\n%s", err, stderr.String())
	}
}

// connectedTo reports whether process pid has had the same socket open on
// two calls in a row: the command's connection to the node, not ctl's probe
// of the node's health, which closes its connection as soon as it is
// answered (and then, the node found, ctl no longer starts another).
func connectedTo(pid int) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	open := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(target, "socket:") {
			open[target] = true
		}
	}
	seenMu.Lock()
	defer seenMu.Unlock()
	again := false
	for target := range open {
		again = again || seenSockets[target]
	}
	seenSockets = open
	return again
}

// seenSockets are the sockets connectedTo saw open on its last call.
var (
	seenMu      sync.Mutex
	seenSockets map[string]bool
)

// startCtlUntil starts ctl with args and polls until ready(its pid) holds
// (or fails the test, saying that ctl never did what); the caller waits for
// the command, which is killed if the test ends first.
func startCtlUntil(t *testing.T, env []string, what string, ready func(pid int) bool, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "ctl"), args...)
	cmd.Dir, cmd.Env = "..", append(os.Environ(), env...)
	stderr := new(strings.Builder)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !ready(cmd.Process.Pid) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("ctl %v did not %s within 10s", args, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd, stderr
}

// TestBackgroundDataDirHeldByEngine: a data dir an engine holds is refused at
// once, naming the engine's process and --server, and no node is left behind.
func TestBackgroundDataDirHeldByEngine(t *testing.T) {
	dir, env := backgroundDir(t)
	eng := startEngine(t, dir)
	_, errOut, code := ctl(t, env, "runs", "ls")
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("held by process %d", eng.cmd.Process.Pid)) || !strings.Contains(errOut, "--server") {
		t.Fatalf("ctl on an engine's data dir: exit %d\n%s", code, errOut)
	}
	if strings.Count(errOut, "\n") != 1 {
		t.Fatalf("want one line of error, got:\n%s", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "ctl-node.json")); !os.IsNotExist(err) {
		t.Fatalf("a background node announced itself on the engine's data dir: %v", err)
	}
}
