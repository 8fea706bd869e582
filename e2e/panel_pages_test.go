package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pagesScript is the script TestPanelPages deploys, in two versions that
// differ in one line: each run tags its customer, logs a line with a note
// (HTML, in one run), makes a step and, with a wait, sleeps.
const pagesScript = `# The panel pages' test: a customer's greeting, logged.
def main(input):
    tag(customer = input["customer"])
    log.info("hello " + input["customer"], note = input.get("note", ""))
    kv.put("greeting/" + input["customer"], "GREETING")
    if input.get("wait"):
        sleep(input["wait"])
    return "done"
`

// TestPanelPages drives the logs, scripts and nodes pages of a real engine
// in Debian's headless Chromium (e2e/browser/pages.mjs, playwright-core):
// two deployed versions of a script and their diff, a rollback after a
// confirmation, a live tail filtered to one customer with Pause and HTML in
// a line shown as text, and the nodes' placement decisions. Screenshots go
// to $DROVER_SHOTS (default: the test's temporary directory).
func TestPanelPages(t *testing.T) {
	node, chromium := browserTools(t)
	shots := shotsDir(t)
	eng := startEngine(t, t.TempDir(), "--resource", "github_api=10/s")
	env := []string{"DROVER_URL=" + eng.url}
	src := filepath.Join(t.TempDir(), "greet.star")
	deploy := func(greeting string) {
		t.Helper()
		if err := os.WriteFile(src, []byte(strings.Replace(pagesScript, "GREETING", greeting, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := ctl(t, env, "deploy", "greet", src); code != 0 {
			t.Fatalf("deploy greet: exit %d\n%s", code, errOut)
		}
	}
	deploy("hello")
	// A run that stays on version 1, sleeping, to be counted on its row.
	if _, errOut, code := ctl(t, env, "run", "--detach", "greet", "--input", `{"customer": "initech", "wait": "1h"}`); code != 0 {
		t.Fatalf("run --detach greet: exit %d\n%s", code, errOut)
	}
	deploy("hi")
	// A finished run gives the node placement decisions to show.
	if _, errOut, code := ctl(t, env, "run", "greet", "--input", `{"customer": "hooli"}`); code != 0 {
		t.Fatalf("run greet: exit %d\n%s", code, errOut)
	}

	browse(t, "the panel's pages in Chromium", shots, "CHROMIUM="+chromium, node, "pages.mjs", eng.url, shots)
}
