package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/cli"
	"github.com/droverhq/drover/engine"
	_ "github.com/droverhq/drover/starlark/builtins/all"
)

// result is one ctl invocation.
type result struct {
	code           int
	stdout, stderr string
}

// ctl runs cli.Main with args and an empty stdin.
func ctl(t *testing.T, args ...string) result {
	t.Helper()
	return ctlIn(t, "", args...)
}

func ctlIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// isolate clears ctl's environment and returns a fresh data dir for an
// embedded node in the test's process, set as DROVER_DATA. (A background node
// is a ctl process of its own: e2e tests it with the real binary.)
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("DROVER_URL", "")
	t.Setenv("DROVER_BACKGROUND", "off")
	t.Setenv("DROVER_DATA", dir)
	return dir
}

var runLine = regexp.MustCompile(`^run ([0-9A-Z]{26})\n`)

// runID is the id ctl run printed on stderr.
func runID(t *testing.T, r result) string {
	t.Helper()
	m := runLine.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no run id on stderr:\n%v", r)
	}
	return m[1]
}

func TestRunAndInspect(t *testing.T) {
	isolate(t)
	r := ctl(t, "run", "testdata/hello.star", "--input", `{"customer":"acme"}`, "--attr", "env=test")
	if r.code != cli.ExitOK {
		t.Fatalf("run:\n%v", r)
	}
	id := runID(t, r)
	if want := "{\n  \"greeting\": \"hello acme\",\n  \"remembered\": true\n}\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if r.stderr != "run "+id+"\n" {
		t.Errorf("stderr = %q", r.stderr)
	}

	t.Run("ls", func(t *testing.T) {
		r := ctl(t, "runs", "ls")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "ID ") {
			t.Fatalf("%v", r)
		}
		line := lineWith(r.stdout, id)
		for _, want := range []string{"hello", "completed", " 3 ", "customer=acme,env=test"} {
			if !strings.Contains(line, want) {
				t.Errorf("row %q lacks %q", line, want)
			}
		}
	})
	t.Run("ls filters", func(t *testing.T) {
		tests := []struct {
			name  string
			args  []string
			match bool
		}{
			{"attr", []string{"--attr", "customer=acme"}, true},
			{"two attrs", []string{"--attr", "customer=acme", "--attr", "env=test"}, true},
			{"other attr", []string{"--attr", "customer=globex"}, false},
			{"status", []string{"--status", "completed"}, true},
			{"other status", []string{"--status", "failed"}, false},
			{"script", []string{"--script", "hello"}, true},
			{"other script", []string{"--script", "checkout"}, false},
			{"since", []string{"--since", "1h"}, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := ctl(t, append([]string{"runs", "ls", "--json"}, tt.args...)...)
				if r.code != 0 {
					t.Fatalf("%v", r)
				}
				var runs []api.Run
				if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil {
					t.Fatalf("not a JSON array of runs: %v\n%v", err, r)
				}
				if got := len(runs) == 1 && runs[0].ID == id; got != tt.match || !tt.match && len(runs) != 0 {
					t.Fatalf("runs = %+v, want match %v", runs, tt.match)
				}
			})
		}
	})
	t.Run("show", func(t *testing.T) {
		r := ctl(t, "runs", "show", id)
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
		for _, want := range []string{"Run:          " + id, "Script:       hello (version ", "Status:       completed", "Coordinator:  local",
			`Input:        {"customer":"acme"}`, "Attrs:        customer=acme,env=test", "Result:\n  {\n    \"greeting\": \"hello acme\","} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("show lacks %q:\n%s", want, r.stdout)
			}
		}
		steps := []struct{ id, builtin, pos string }{{"1", "time.now", "hello.star:4:"}, {"2", "kv.put", "hello.star:5:"}, {"3", "kv.get", "hello.star:6:"}}
		for _, s := range steps {
			f := strings.Fields(lineWith(r.stdout, " "+s.builtin+" "))
			if len(f) < 8 || f[0] != s.id || f[2] != "local" || !strings.HasPrefix(f[3], "+") || f[5] != "ok" || !strings.HasPrefix(f[6], s.pos) ||
				!strings.HasPrefix(f[7], "co-located") && !strings.HasPrefix(f[7], "drover:") {
				t.Errorf("step %s row %q", s.id, f)
			}
		}
	})
	t.Run("show json", func(t *testing.T) {
		r := ctl(t, "runs", "show", "--json", id)
		var d api.RunDetail
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || r.code != 0 {
			t.Fatalf("%v: %v", err, r)
		}
		if d.ID != id || len(d.Steps) != 3 || d.Steps[1].Builtin != "kv.put" || !jsonEqual(d.Input, `{"customer":"acme"}`) {
			t.Fatalf("detail = %+v", d)
		}
	})
	t.Run("wait", func(t *testing.T) {
		r := ctl(t, "runs", "wait", id)
		if r.code != 0 || r.stdout != "run "+id+" completed\n" || r.stderr != "" {
			t.Fatalf("%v", r)
		}
	})
}

func jsonEqual(raw json.RawMessage, want string) bool {
	var a, b bytes.Buffer
	return json.Compact(&a, raw) == nil && json.Compact(&b, []byte(want)) == nil && a.String() == b.String()
}

// lineWith is the first line of text containing s.
func lineWith(text, s string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

func TestRunFailure(t *testing.T) {
	isolate(t)
	r := ctl(t, "run", "testdata/boom.star")
	if r.code != cli.ExitFailure || r.stdout != "" {
		t.Fatalf("%v", r)
	}
	id := runID(t, r)
	for _, want := range []string{"run " + id + " failed: fail: boom\n", "Traceback (most recent call last):\n", "boom.star:6:10: in main\n", "boom.star:3:9: in check\n"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}

	r = ctl(t, "runs", "wait", id)
	if r.code != cli.ExitFailure || r.stdout != "run "+id+" failed\n" || !strings.Contains(r.stderr, "boom.star:3:9: in check") {
		t.Errorf("wait:\n%v", r)
	}
	r = ctl(t, "runs", "show", id)
	if r.code != 0 || !strings.Contains(r.stdout, "Error:        fail: boom\nBacktrace:\n  Traceback") || !strings.Contains(r.stdout, "No steps.") {
		t.Errorf("show:\n%v", r)
	}
	r = ctl(t, "runs", "ls", "--status", "failed")
	if r.code != 0 || !strings.Contains(lineWith(r.stdout, id), "boom") {
		t.Errorf("ls --status failed:\n%v", r)
	}
}

func TestCompileError(t *testing.T) {
	isolate(t)
	r := ctl(t, "run", "testdata/syntax.star")
	if r.code != cli.ExitFailure || r.stdout != "" || !regexp.MustCompile(`(?m)^syntax\.star:2:\d+: `).MatchString(r.stderr) {
		t.Fatalf("%v", r)
	}
	if runLine.MatchString(r.stderr) {
		t.Errorf("a script that does not compile got a run:\n%v", r)
	}
}

// TestNoMainRefusedBeforeStarting: a script without main is refused as ctl
// deploy refuses it, with its position, and no run is started.
func TestNoMainRefusedBeforeStarting(t *testing.T) {
	isolate(t)
	r := ctl(t, "run", "testdata/no_main.star")
	if r.code != cli.ExitFailure || r.stdout != "" || !strings.Contains(r.stderr, "no_main.star: no main function: define `def main(input):`") {
		t.Fatalf("%v", r)
	}
	if runLine.MatchString(r.stderr) {
		t.Errorf("a script without main got a run:\n%v", r)
	}
	if ls := ctl(t, "runs", "ls", "--json"); strings.TrimSpace(ls.stdout) != "[]" {
		t.Errorf("runs after the refusal: %v", ls)
	}
}

func TestInput(t *testing.T) {
	isolate(t)
	file := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(file, []byte(`{"from": "file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, stdin, input, want string
	}{
		{"none", "", "", "null\n"},
		{"text", "", `[1, "a"]`, "[\n  1,\n  \"a\"\n]\n"},
		{"file", "", "@" + file, "{\n  \"from\": \"file\"\n}\n"},
		{"stdin", `"piped"`, "@-", "\"piped\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"run", "testdata/echo.star"}
			if tt.input != "" {
				args = append(args, "--input", tt.input)
			}
			r := ctlIn(t, tt.stdin, args...)
			if r.code != 0 || r.stdout != tt.want {
				t.Fatalf("want stdout %q\n%v", tt.want, r)
			}
		})
	}
}

func TestLoadIncludesSiblingFiles(t *testing.T) {
	isolate(t)
	r := ctl(t, "run", "testdata/multi/main.star", "--input", `{"name":"drover"}`, "--name", "greeter")
	if r.code != 0 || r.stdout != "\"hello drover\"\n" {
		t.Fatalf("%v", r)
	}
	r = ctl(t, "runs", "ls", "--script", "greeter", "--json")
	if !strings.Contains(r.stdout, `"script": "greeter"`) {
		t.Fatalf("--name not used as the script name:\n%v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	isolate(t)
	tests := []struct {
		name string
		args []string
		want string // the error line, before the hint
		hint string // the command the hint names
	}{
		{"input not JSON", []string{"run", "testdata/echo.star", "--input", "{"}, "ctl run: --input is not JSON: unexpected end of JSON input", "ctl run"},
		{"input file missing", []string{"run", "testdata/echo.star", "--input", "@testdata/nope.json"}, "ctl run: --input: open testdata/nope.json: no such file or directory", "ctl run"},
		{"unknown flag", []string{"run", "--bogus", "testdata/echo.star"}, "ctl run: unknown flag: --bogus", "ctl run"},
		{"unknown flag before the command", []string{"--bogus", "runs", "ls"}, "ctl: unknown flag: --bogus", "ctl"},
		{"unknown flag after the command", []string{"runs", "ls", "--bogus"}, "ctl runs ls: unknown flag: --bogus", "ctl runs ls"},
		{"missing file", []string{"run"}, "ctl run: missing FILE.star", "ctl run"},
		{"extra arg", []string{"run", "a.star", "b.star"}, `ctl run: unexpected argument "b.star" (want FILE.star|NAME)`, "ctl run"},
		{"bad attr", []string{"run", "testdata/echo.star", "--attr", "noequals"}, `ctl run: --attr "noequals": want name=value`, "ctl run"},
		{"detach without server", []string{"run", "--detach", "testdata/echo.star"}, "ctl run: --detach needs a node that outlives ctl", "ctl run"},
		{"unknown command", []string{"rnu"}, `ctl: unknown command "rnu"; did you mean run or runs?`, "ctl"},
		{"unknown runs command", []string{"runs", "delete"}, `ctl runs: unknown command "delete"`, "ctl runs"},
		{"bad status", []string{"runs", "ls", "--status", "done"}, `ctl runs ls: --status "done": want running, completed, failed, cancelled or blocked`, "ctl runs ls"},
		{"bad since", []string{"runs", "ls", "--since", "1d"}, `ctl runs ls: --since "1d": want a duration`, "ctl runs ls"},
		{"bad limit", []string{"runs", "ls", "--limit", "0"}, `ctl runs ls: --limit "0": want a positive number`, "ctl runs ls"},
		{"limit not a number", []string{"runs", "ls", "--limit", "ten"}, `ctl runs ls: invalid argument "ten" for "--limit"`, "ctl runs ls"},
		{"ls args", []string{"runs", "ls", "x"}, `ctl runs ls: unexpected argument "x"`, "ctl runs ls"},
		{"show without run", []string{"runs", "show"}, "ctl runs show: missing RUN", "ctl runs show"},
		{"wait without run", []string{"runs", "wait"}, "ctl runs wait: missing RUN", "ctl runs wait"},
		{"replay without run", []string{"replay"}, "ctl replay: missing RUN", "ctl replay"},
		{"replay run and file", []string{"replay", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "--from", "run.json"}, `ctl replay: unexpected argument "01ZZZZZZZZZZZZZZZZZZZZZZZZ": give RUN or --from FILE, not both`, "ctl replay"},
		{"cancel without run", []string{"cancel"}, "ctl cancel: missing RUN", "ctl cancel"},
		{"export without run", []string{"runs", "export"}, "ctl runs export: missing RUN", "ctl runs export"},
		{"pin two runs", []string{"runs", "pin", "a", "b"}, `ctl runs pin: unexpected argument "b" (want RUN)`, "ctl runs pin"},
		{"resume without run", []string{"runs", "resume"}, "ctl runs resume: missing RUN", "ctl runs resume"},
		{"one dash", []string{"runs", "ls", "-json"}, "ctl runs ls: -json: flags take two dashes: --json", "ctl runs ls"},
		{"one dash global", []string{"-data-dir=/tmp/d", "runs", "ls"}, "ctl runs ls: -data-dir=/tmp/d: flags take two dashes: --data-dir=/tmp/d", "ctl runs ls"},
		{"max exec steps zero", []string{"--max-exec-steps", "0", "run", "testdata/echo.star"}, `ctl run: invalid argument "0" for "--max-exec-steps" flag: want a whole number above 0`, "ctl run"},
		{"max exec steps negative", []string{"run", "testdata/echo.star", "--max-exec-steps=-5"}, `ctl run: invalid argument "-5" for "--max-exec-steps" flag: want a whole number above 0`, "ctl run"},
		{"max exec steps not a number", []string{"replay", "--max-exec-steps", "lots", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"}, `ctl replay: invalid argument "lots" for "--max-exec-steps" flag`, "ctl replay"},
		{"version on a command", []string{"runs", "ls", "--version"}, "ctl runs ls: unknown flag: --version", "ctl runs ls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ctl(t, tt.args...)
			if r.code != cli.ExitUsage || r.stdout != "" {
				t.Fatalf("%v", r)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], tt.want) || lines[1] != "Run '"+tt.hint+" --help' for usage." {
				t.Fatalf("stderr = %q, want %q then the hint for %s", r.stderr, tt.want, tt.hint)
			}
		})
	}
}

func TestBadAttributeNameIsUsageError(t *testing.T) {
	isolate(t)
	r := ctl(t, "run", "testdata/echo.star", "--attr", "bad name=x")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "may hold only letters, digits and _") {
		t.Fatalf("%v", r)
	}
}

func TestUnknownRun(t *testing.T) {
	isolate(t)
	for _, cmd := range [][]string{{"runs", "show"}, {"runs", "wait"}, {"runs", "export"}, {"runs", "pin"}, {"runs", "resume"}, {"replay"}, {"cancel"}} {
		r := ctl(t, append(cmd, "01ZZZZZZZZZZZZZZZZZZZZZZZZ")...)
		if r.code != cli.ExitFailure || !strings.Contains(r.stderr, `unknown run "01ZZZZZZZZZZZZZZZZZZZZZZZZ"`) || strings.Contains(r.stderr, "--help") {
			t.Errorf("%s:\n%v", strings.Join(cmd, " "), r)
		}
	}
}

func TestHelp(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{}, {"--help"}, {"run", "--help"}, {"runs"}, {"runs", "--help"}, {"runs", "ls", "--help"},
		{"runs", "show", "-h"}, {"runs", "wait", "--help"}, {"help", "run"}, {"replay", "--help"}, {"cancel", "-h"},
		{"runs", "export", "--help"}, {"runs", "pin", "--help"}, {"runs", "resume", "--help"}} {
		r := ctl(t, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Errorf("ctl %s:\n%v", strings.Join(args, " "), r)
		}
	}
}

func TestVerboseLogsTheEmbeddedNode(t *testing.T) {
	isolate(t)
	r := ctl(t, "--verbose", "run", "testdata/echo.star")
	if r.code != 0 || !strings.Contains(r.stderr, "node started") || !strings.Contains(r.stderr, "run started") {
		t.Fatalf("%v", r)
	}
	if r = ctl(t, "run", "testdata/echo.star"); strings.Contains(r.stderr, "node started") {
		t.Fatalf("logs without --verbose:\n%v", r)
	}
}

func TestDataDirFlagAndLock(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	if r := ctl(t, "--data-dir", dir, "run", "testdata/echo.star"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	if r := ctl(t, "runs", "ls", "--json"); r.stdout != "[]\n" {
		t.Fatalf("the run went to DROVER_DATA instead of --data-dir:\n%v", r)
	}
	startNode(t, dir)
	r := ctl(t, "--data-dir", dir, "runs", "ls")
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "data dir in use") || !strings.Contains(r.stderr, "--server") {
		t.Fatalf("%v", r)
	}
}

// startNode starts an engine node on dir, closed when the test ends.
func startNode(t *testing.T, dir string) *engine.Node {
	t.Helper()
	n, err := engine.NewNode(context.Background(), engine.Options{Name: "srv", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

func TestServer(t *testing.T) {
	// The embedded node's data dir is the server's, held by it: a command
	// that started an embedded node instead of using the server would fail.
	dir := isolate(t)
	n := startNode(t, dir)
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)

	r := ctl(t, "--server", srv.URL, "run", "testdata/hello.star", "--input", `{"customer":"initech"}`)
	if r.code != 0 || !strings.Contains(r.stdout, `"greeting": "hello initech"`) {
		t.Fatalf("run:\n%v", r)
	}
	id := runID(t, r)
	r = ctl(t, "--server", srv.URL, "runs", "show", id)
	if r.code != 0 || !strings.Contains(r.stdout, "Coordinator:  srv") || !strings.Contains(lineWith(r.stdout, "kv.put"), " srv ") {
		t.Fatalf("show:\n%v", r)
	}
	r = ctl(t, "--server", srv.URL, "run", "testdata/syntax.star")
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "syntax.star:2:") {
		t.Fatalf("compile error:\n%v", r)
	}
	r = ctl(t, "--server", srv.URL, "runs", "show", "01ZZZZZZZZZZZZZZZZZZZZZZZZ")
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "unknown run") {
		t.Fatalf("unknown run:\n%v", r)
	}

	t.Setenv("DROVER_URL", srv.URL)
	r = ctl(t, "run", "--detach", "testdata/boom.star")
	if r.code != 0 || r.stderr != "" || !regexp.MustCompile(`^[0-9A-Z]{26}\n$`).MatchString(r.stdout) {
		t.Fatalf("detach:\n%v", r)
	}
	id = strings.TrimSpace(r.stdout)
	r = ctl(t, "runs", "wait", id)
	if r.code != cli.ExitFailure || r.stdout != "run "+id+" failed\n" || !strings.Contains(r.stderr, "fail: boom") {
		t.Fatalf("wait:\n%v", r)
	}
	r = ctl(t, "runs", "ls", "--status", "failed", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, id) {
		t.Fatalf("ls:\n%v", r)
	}
}

func TestServerUnreachable(t *testing.T) {
	isolate(t)
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	r := ctl(t, "--server", url, "runs", "ls")
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "is `engine` running there?") {
		t.Fatalf("%v", r)
	}
}

func TestMissingScriptFile(t *testing.T) {
	isolate(t)
	r := ctl(t, "run", "testdata/nope.star")
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "nope.star: no such file") {
		t.Fatalf("%v", r)
	}
}

// TestRunJSON runs scripts with --json on an embedded node: the record goes to
// stdout whatever the outcome, with the exit code of the outcome.
func TestRunJSON(t *testing.T) {
	isolate(t)
	tests := []struct {
		name, script string
		code         int
		status       string
	}{
		{"completed", "testdata/echo.star", cli.ExitOK, api.StatusCompleted},
		{"failed", "testdata/boom.star", cli.ExitFailure, api.StatusFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ctl(t, "run", tt.script, "--json", "--input", `"<x> & y"`)
			var rec api.Run
			if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || r.code != tt.code {
				t.Fatalf("%v\n%v", err, r)
			}
			if rec.ID != runID(t, r) || rec.Status != tt.status || r.stderr != "run "+rec.ID+"\n" {
				t.Fatalf("record %+v\n%v", rec, r)
			}
			if tt.status == api.StatusCompleted && !strings.Contains(r.stdout, `"result": "<x> & y"`) {
				t.Errorf("result not as the script returned it:\n%s", r.stdout)
			}
			if tt.status == api.StatusFailed && (rec.Error == nil || !strings.Contains(rec.Error.Backtrace, "boom.star:3:9: in check")) {
				t.Errorf("error %+v", rec.Error)
			}
		})
	}
}

// TestMaxExecSteps runs a loop under a lower --max-exec-steps: the embedded
// node stops the run, and a replay of a run that completed under the default
// limit fails the same way (the outcome differs: exit 3).
func TestMaxExecSteps(t *testing.T) {
	isolate(t)
	r := ctl(t, "--max-exec-steps", "1000", "run", "testdata/loop.star", "--input", "10000")
	if r.code != cli.ExitFailure || r.stdout != "" || !strings.Contains(r.stderr, "failed: ") || !strings.Contains(r.stderr, "1000 ") {
		t.Fatalf("a loop over the limit:\n%v", r)
	}
	r = ctl(t, "run", "testdata/loop.star", "--input", "10000")
	if r.code != 0 || r.stdout != "49995000\n" {
		t.Fatalf("the same loop under the default limit:\n%v", r)
	}
	id := runID(t, r)
	if r = ctl(t, "replay", id); r.code != 0 {
		t.Fatalf("replay:\n%v", r)
	}
	r = ctl(t, "replay", id, "--max-exec-steps", "1000")
	if r.code != cli.ExitDiverged || !strings.Contains(r.stderr, "the outcome differs") || !strings.Contains(r.stderr, "1000 ") {
		t.Fatalf("replay over the limit:\n%v", r)
	}
}

func TestVersionFlag(t *testing.T) {
	isolate(t)
	r := ctl(t, "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ctl version ") || !strings.Contains(r.stdout, "built with go") || r.stderr != "" {
		t.Fatalf("%v", r)
	}
}
