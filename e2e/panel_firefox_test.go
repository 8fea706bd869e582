package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPanelInFirefox opens the panel of a real engine in Debian's headless
// Firefox (firefox-esr; .ci/run installs it), driven over WebDriver BiDi by
// e2e/browser/firefox.mjs: each page draws its data, a step's details open
// from its bar, HTML in an attribute is text, and the page logs no error.
func TestPanelInFirefox(t *testing.T) {
	node, _ := browserTools(t)
	firefox := os.Getenv("FIREFOX")
	if firefox == "" {
		firefox = "firefox-esr"
	}
	if _, err := exec.LookPath(firefox); err != nil {
		t.Fatalf("the panel's Firefox test needs %s (apt-get install firefox-esr; .ci/run does): %v", firefox, err)
	}
	shots := shotsDir(t)
	eng := startEngine(t, t.TempDir())
	env := []string{"DROVER_URL=" + eng.url}
	run := func(input string) string {
		t.Helper()
		_, errOut, code := ctl(t, env, "run", "e2e/browser/order.star", "--input", input)
		if code != 0 {
			t.Fatalf("run %s: exit %d\n%s", input, code, errOut)
		}
		return runIDFrom(t, errOut)
	}
	acme := run(`{"customer": "acme", "order": 1}`)
	run(`{"customer": "globex", "order": 2}`)
	xss := run(`{"customer": "<img src=x onerror=\"window.pwned=1\">", "order": 3}`)

	cmd := exec.Command(node, "--experimental-websocket", "firefox.mjs", eng.url, shots, acme, xss)
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(), "FIREFOX="+firefox)
	out, err := cmd.CombinedOutput()
	log := strings.ReplaceAll(string(out), "(node", "\n(node") // node's warning about the flag, on its own line
	if err != nil {
		t.Fatalf("the panel in Firefox: %v\n%s\nscreenshots in %s", err, log, shots)
	}
	t.Logf("%s\nscreenshots in %s", log, filepath.Clean(shots))
}
