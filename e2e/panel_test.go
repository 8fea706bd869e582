package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPanelInChromium drives the control panel of a real engine in Debian's
// headless Chromium (e2e/browser/panel.mjs, with playwright-core; .ci/run
// installs both): the runs, one customer's through the filter and back, a
// run with its steps and log lines, HTML in an attribute and a log line
// shown as text, a run that does not exist, a run cancelled from its page
// with a reason, a huge result cut with "Show all", and the nodes. Screenshots go to
// $DROVER_SHOTS (default: the test's temporary directory).
func TestPanelInChromium(t *testing.T) {
	node, chromium := browserTools(t)
	shots := shotsDir(t)
	eng := startEngine(t, t.TempDir(), "--resource", "github_api=10/s")
	env := []string{"DROVER_URL=" + eng.url}
	run := func(input string) string { return runOrder(t, env, input) }
	acme := run(`{"customer": "acme", "order": 1}`)
	run(`{"customer": "globex", "order": 2}`)
	run(`{"customer": "acme", "order": 3}`)
	xss := run(`{"customer": "<img src=x onerror=\"window.pwned=1\">", "order": 4, "note": "<script>window.pwned=1</script>"}`)
	detached, errOut, code := ctl(t, env, "run", "--detach", "e2e/browser/order.star", "--input", `{"customer": "initech", "order": 5, "wait": "1h"}`)
	if code != 0 {
		t.Fatalf("run --detach: exit %d\n%s", code, errOut)
	}
	sleeping := strings.TrimSpace(detached) // --detach prints the id alone

	browse(t, "the panel in Chromium", shots, "CHROMIUM="+chromium, node, "panel.mjs", eng.url, shots, acme, xss, sleeping)
}

// runIDFrom reads the run id ctl run prints on stderr ("run <ID>").
func runIDFrom(t *testing.T, stderr string) string {
	t.Helper()
	m := regexp.MustCompile(`run ([0-9A-Z]{26})`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no run id in:\n%s", stderr)
	}
	return m[1]
}

// browserTools returns node and Chromium for the panel's browser tests and
// benchmarks: a test fails when one is missing (.ci/run installs them), a
// benchmark is skipped.
func browserTools(tb testing.TB) (node, chromium string) {
	tb.Helper()
	missing := tb.Fatalf
	if _, bench := tb.(*testing.B); bench {
		missing = tb.Skipf
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("the panel's browser tests need node (.ci/run installs it): %v", err)
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("the panel's browser tests need Chromium at %s (apt-get install chromium; .ci/run does): %v", chromium, err)
	}
	if _, err := os.Stat("browser/node_modules/playwright-core"); err != nil {
		missing("the panel's browser tests need playwright-core: npm ci --prefix e2e/browser (.ci/run does): %v", err)
	}
	return node, chromium
}

// shotsDir is where a browser test saves its screenshots: $DROVER_SHOTS, or
// the test's temporary directory.
func shotsDir(t *testing.T) string {
	if dir := os.Getenv("DROVER_SHOTS"); dir != "" {
		return dir
	}
	return t.TempDir()
}

// runOrder runs e2e/browser/order.star with input through ctl and returns
// the run's id.
func runOrder(t *testing.T, env []string, input string) string {
	t.Helper()
	_, errOut, code := ctl(t, env, "run", "e2e/browser/order.star", "--input", input)
	if code != 0 {
		t.Fatalf("run %s: exit %d\n%s", input, code, errOut)
	}
	return runIDFrom(t, errOut)
}

// browse runs a browser script in e2e/browser (command: node and its
// arguments) with env added, failing the test with its output as what, and
// logs its output and where its screenshots are.
func browse(t *testing.T, what, shots, env string, command ...string) {
	t.Helper()
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s\nscreenshots in %s", what, err, out, shots)
	}
	t.Logf("%s\nscreenshots in %s", out, filepath.Clean(shots))
}
