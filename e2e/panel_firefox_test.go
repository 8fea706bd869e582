package e2e

import (
	"os"
	"os/exec"
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
	run := func(input string) string { return runOrder(t, env, input) }
	acme := run(`{"customer": "acme", "order": 1}`)
	run(`{"customer": "globex", "order": 2}`)
	xss := run(`{"customer": "<img src=x onerror=\"window.pwned=1\">", "order": 3}`)

	browse(t, "the panel in Firefox", shots, "FIREFOX="+firefox, node, "--experimental-websocket", "firefox.mjs", eng.url, shots, acme, xss)
}
