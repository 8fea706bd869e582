package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/droverhq/drover/cli"
)

// writeFiles writes files under a new temp dir and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDeployCycle is the deploy cycle a user goes through: deploy a bundle,
// run it by name, deploy a change, a broken bundle (refused, the live version
// stays), a change refused by --check-replay, the history, a rollback.
func TestDeployCycle(t *testing.T) {
	isolate(t)
	v1 := writeFiles(t, map[string]string{
		"main.star":    "load(\"lib/fmt.star\", \"greet\")\ndef main(input):\n    return greet(input, time.now())\n",
		"lib/fmt.star": "def greet(who, t):\n    return \"v1 hello \" + who\n",
		".git/ignored": "not a script",
		"notes.txt":    "not a script",
		"other/x.star": "x = 1\n",
	})
	r := ctl(t, "deploy", "greet", v1, "--by", "alice")
	if r.code != cli.ExitOK || !strings.HasPrefix(r.stdout, "deployed greet version 1 (") || !strings.Contains(r.stdout, "3 files") {
		t.Fatalf("deploy:\n%v", r)
	}
	r = ctl(t, "run", "greet", "--input", `"acme"`)
	if r.code != cli.ExitOK || r.stdout != "\"v1 hello acme\"\n" {
		t.Fatalf("run greet:\n%v", r)
	}

	broken := writeFiles(t, map[string]string{
		"main.star": "load(\"missing.star\", \"f\")\ndef main(input):\n    return http.gett(f)\n",
	})
	r = ctl(t, "deploy", "greet", broken)
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "refused; the live version is unchanged") ||
		!strings.Contains(r.stderr, `main.star:1:1: load("missing.star"): the bundle has no file missing.star`) ||
		!strings.Contains(r.stderr, `main.star:3:17: http has no builtin "gett"; did you mean http.get?`) {
		t.Fatalf("broken deploy:\n%v", r)
	}

	// Same calls, another result: replays. Another call: refused.
	v2 := writeFiles(t, map[string]string{
		"main.star":    "load(\"lib/fmt.star\", \"greet\")\ndef main(input):\n    return greet(input, time.now())\n",
		"lib/fmt.star": "def greet(who, t):\n    return \"v2 hello \" + who\n",
	})
	r = ctl(t, "deploy", "greet", v2, "--check-replay", "5", "--by", "bob")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "version 2") || !strings.Contains(r.stdout, "1 past runs replay") {
		t.Fatalf("deploy v2:\n%v", r)
	}
	diverging := writeFiles(t, map[string]string{"main.star": "def main(input):\n    return uuid()\n"})
	r = ctl(t, "deploy", "greet", diverging, "--check-replay", "5")
	if r.code != cli.ExitDiverged || !strings.Contains(r.stderr, "deploy of greet refused") || !strings.Contains(r.stderr, "non-determinism at step 1") {
		t.Fatalf("diverging deploy:\n%v", r)
	}
	r = ctl(t, "run", "greet", "--input", `"acme"`)
	if r.stdout != "\"v2 hello acme\"\n" {
		t.Fatalf("run after refusals:\n%v", r)
	}

	r = ctl(t, "rollback", "greet", "--by", "carol")
	if r.code != cli.ExitOK || r.stdout == "" || !strings.Contains(r.stdout, "greet version 3 is live: rollback to version 1") {
		t.Fatalf("rollback:\n%v", r)
	}
	r = ctl(t, "run", "greet", "--input", `"acme"`)
	if r.stdout != "\"v1 hello acme\"\n" {
		t.Fatalf("run after rollback:\n%v", r)
	}
	r = ctl(t, "scripts", "history", "greet")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != cli.ExitOK || len(lines) != 4 || !strings.Contains(lines[1], "alice") || !strings.Contains(lines[2], "bob") ||
		!strings.Contains(lines[3], "carol") || !strings.HasSuffix(lines[3], "live rollback to version 1") {
		t.Fatalf("history:\n%v", r)
	}
	r = ctl(t, "scripts", "ls")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "greet") || !strings.Contains(r.stdout, "lib/fmt.star,main.star") {
		t.Fatalf("scripts ls:\n%v", r)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "nothing"}, cli.ExitFailure, `unknown script "nothing": deploy it first`},
		{[]string{"rollback", "greet", "9"}, cli.ExitUsage, "greet has no version 9; its versions are 1 to 3"},
		{[]string{"rollback", "greet", "x"}, cli.ExitUsage, `VERSION "x" is not a version number`},
		{[]string{"deploy", "bad name", v1}, cli.ExitUsage, `script name "bad name"`},
		{[]string{"deploy", "greet", filepath.Join(v1, "notes.txt")}, cli.ExitUsage, "is not a .star file or a folder of them"},
		{[]string{"deploy", "greet", writeFiles(t, map[string]string{"a.star": "", "b.star": ""})}, cli.ExitUsage, "which file of"},
		{[]string{"deploy", "greet", v1, "--main", "nope.star"}, cli.ExitUsage, "--main nope.star: the bundle has no such file"},
		{[]string{"scripts", "history", "nothing"}, cli.ExitFailure, `unknown script "nothing"`},
	} {
		r := ctl(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("ctl %s: want exit %d and %q\n%v", strings.Join(tc.args, " "), tc.code, tc.want, r)
		}
	}
}

// TestRunsWatch prints a finished run's journal, one line per entry, and
// exits once the end entry is printed.
func TestRunsWatch(t *testing.T) {
	isolate(t)
	id := runID(t, ctl(t, "run", "testdata/hello.star", "--input", `{"customer":"acme"}`))
	r := ctl(t, "runs", "watch", id)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != cli.ExitOK || len(lines) < 4 || !strings.HasPrefix(lines[0], "+0s") || !strings.Contains(lines[0], "start   script hello") ||
		!strings.Contains(lines[len(lines)-1], "end     completed") || !strings.Contains(r.stdout, "kv.put ok in") || !strings.Contains(r.stdout, "co-located") {
		t.Fatalf("watch:\n%v", r)
	}
	r = ctl(t, "runs", "watch", id, "--json")
	if r.code != cli.ExitOK || !strings.HasPrefix(r.stdout, `{"id":`) || strings.Count(r.stdout, "\n") != len(lines) {
		t.Fatalf("watch --json:\n%v", r)
	}
	if r := ctl(t, "runs", "watch", "NOPE"); r.code != cli.ExitFailure || !strings.Contains(r.stderr, `unknown run "NOPE"`) {
		t.Fatalf("unknown run:\n%v", r)
	}
}
