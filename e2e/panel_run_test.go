package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runPageScripts are the scripts TestPanelRunPage runs, by file name.
var runPageScripts = map[string]string{
	// Parallel branches that each make steps and log, then a sleep that parks the run.
	"par.star": `# The run page's test: parallel branches, then a sleep.
def branch(i):
    kv.put("par/" + str(i), "v")
    log.info("branch", i = i)
    return time.now()

def main(input):
    log.info("start", customer = input["customer"])
    a = rand.int(10)
    r = parallel([lambda i=i: branch(i) for i in range(3)])
    sleep("1200ms")
    kv.put("par/done", "yes")
    return {"branches": len(r)}
`,
	// Ten thousand cheap steps.
	"many.star": `# The run page's test: many steps.
def main(input):
    for i in range(input["n"]):
        time.now()
    return {"steps": input["n"]}
`,
	// A run that parks for an hour, and two later versions of it: one whose
	// first call differs (a resume onto it blocks the run), one that makes the
	// same calls (a resume onto it goes on).
	"blk.star": `# The run page's test: a run that parks.
def main(input):
    kv.put("blk/" + str(input["n"]), "first")
    sleep("1h")
    kv.put("blk/" + str(input["n"]), "woke")
    return "done"
`,
	"bad.star": `# The run page's test: a version whose first call differs.
def main(input):
    x = uuid()
    sleep("1h")
    return "done"
`,
	"fixed.star": `# The run page's test: a run that parks (version 2: the same calls).
def main(input):
    kv.put("blk/" + str(input["n"]), "first")
    sleep("1h")
    kv.put("blk/" + str(input["n"]), "woke")
    return "fixed"
`,
}

// TestPanelRunPage drives the page of one run of a real engine in Debian's
// headless Chromium (e2e/browser/run-page.mjs, playwright-core): a run with
// parallel branches and a sleep (lanes, bars in rows, a step's details with
// its arguments, node, reason and log lines, its source line, by mouse and
// keyboard, on a phone's width too), pin, export, the replay check against
// the live version and a diverging pasted script, a run seen live, a
// blocked run resumed on a fixed version, and a run of 10,000 steps.
// Screenshots go to $DROVER_SHOTS (default: the test's temporary directory).
func TestPanelRunPage(t *testing.T) {
	node, chromium := browserTools(t)
	shots := shotsDir(t)
	dir := t.TempDir()
	for name, src := range runPageScripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	eng := startEngine(t, t.TempDir())
	env := []string{"DROVER_URL=" + eng.url}
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := ctl(t, env, args...)
		if code != 0 {
			t.Fatalf("ctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out + errOut
	}

	// The long one first: it makes its steps while the rest is set up.
	many := strings.TrimSpace(must("run", "--detach", filepath.Join(dir, "many.star"), "--input", `{"n": 10000}`))

	must("deploy", "par", filepath.Join(dir, "par.star"))
	par := runIDFrom(t, must("run", "par", "--input", `{"customer": "acme"}`))

	must("deploy", "blk", filepath.Join(dir, "blk.star"))
	blocked := strings.TrimSpace(must("run", "--detach", "blk", "--input", `{"n": 1}`))
	waitRun(t, env, blocked, func(r runRecord) bool { return r.WakeAt != "" })
	must("runs", "resume", blocked, "--script", filepath.Join(dir, "bad.star"), "--name", "blk")
	waitRun(t, env, blocked, func(r runRecord) bool { return r.Status == "blocked" })
	must("deploy", "blk", filepath.Join(dir, "fixed.star"))

	waitRun(t, env, many, func(r runRecord) bool { return r.Status == "completed" })

	browse(t, "the run page in Chromium", shots, "CHROMIUM="+chromium, node, "run-page.mjs", eng.url, shots, par, blocked, many)
}

// runRecord is what waitRun reads of a run.
type runRecord struct {
	Status string `json:"status"`
	WakeAt string `json:"wake_at"`
}

// waitRun polls run id's record (ctl runs show --json) until ok, for up to 3 minutes.
func waitRun(t *testing.T, env []string, id string, ok func(runRecord) bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		out, errOut, code := ctl(t, env, "runs", "show", "--json", id)
		last = out + errOut
		var r runRecord
		if code == 0 && json.Unmarshal([]byte(out), &r) == nil && ok(r) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("run %s did not get where the test waits for it in 3 minutes; last:\n%s", id, last)
}
