package panel_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/droverhq/drover/panel"
)

func get(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestHandler: the page at / and at any route of the application, the
// assets by name with their types, a 404 for a file that is not one, and
// the headers that keep the page to its own code.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(panel.Handler())
	defer srv.Close()
	for _, path := range []string{"/", "/runs/01M8TGB08QEC7BVEANP02CKZ91", "/nodes"} {
		resp, body := get(t, srv, "GET", path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `<script type="module" src="/a/`) {
			t.Errorf("GET %s: %d %s\n%s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	for path, ctype := range map[string]string{"/app.js": "text/javascript", "/lib.js": "text/javascript", "/style.css": "text/css"} {
		resp, body := get(t, srv, "GET", path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(body) == 0 || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if resp, _ := get(t, srv, "GET", "/nothing.js"); resp.StatusCode != 404 {
		t.Errorf("GET /nothing.js: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv, "POST", "/"); resp.StatusCode != 405 {
		t.Errorf("POST /: %d", resp.StatusCode)
	}
}

// TestNoHTMLFromData: the application never parses data as HTML: no
// innerHTML, outerHTML, insertAdjacentHTML or document.write anywhere.
func TestNoHTMLFromData(t *testing.T) {
	srv := httptest.NewServer(panel.Handler())
	defer srv.Close()
	scripts, err := filepath.Glob("assets/*.js")
	if err != nil || len(scripts) < 5 {
		t.Fatalf("the application's modules: %v %v", scripts, err)
	}
	for _, name := range scripts {
		path := "/" + filepath.Base(name)
		_, body := get(t, srv, "GET", path)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(body, bad) {
				t.Errorf("%s uses %s", path, bad)
			}
		}
	}
}

// TestClientLogic runs the unit tests of the application's pure modules
// with node (node --test panel/*_test.mjs: lib, timeline, diff, logs).
func TestClientLogic(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("the panel's modules are tested with node --test: install node (.ci/run does)")
	}
	tests, err := filepath.Glob("*_test.mjs")
	if err != nil || len(tests) < 4 {
		t.Fatalf("the unit tests of the panel's modules: %v %v", tests, err)
	}
	out, err := exec.Command(node, append([]string{"--test"}, tests...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("node --test %s: %v\n%s", strings.Join(tests, " "), err, out)
	}
	t.Logf("%s", out)
}

// TestRevalidation: the page names its assets under a version, cached for
// good, and reaches every module, so that a reload is one request (the
// page, 304), not one per module and level of imports; a browser that has
// a file gets 304 for it (ETag).
func TestRevalidation(t *testing.T) {
	srv := httptest.NewServer(panel.Handler())
	defer srv.Close()
	_, page := get(t, srv, "GET", "/")
	m := regexp.MustCompile(`src="(/a/[0-9a-f]{12}/)app.js"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page names no versioned app.js:\n%s", page)
	}
	prefix := m[1]
	// Every module is reached from the page: loaded or preloaded by it, or
	// imported (statically, or when its page is first needed) by a module.
	scripts, _ := filepath.Glob("assets/*.js")
	var sources strings.Builder
	for _, name := range scripts {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sources.Write(data)
	}
	for _, name := range scripts {
		base := filepath.Base(name)
		loaded := strings.Contains(page, `<script type="module" src="`+prefix+base+`">`) ||
			strings.Contains(page, `<link rel="modulepreload" href="`+prefix+base+`">`)
		imported := strings.Contains(sources.String(), `from "./`+base+`"`) || strings.Contains(sources.String(), `import("./`+base+`")`)
		if !loaded && !imported {
			t.Errorf("no page or module loads %s", base)
		}
	}
	resp, body := get(t, srv, "GET", prefix+"ui.js")
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || !strings.Contains(body, "export function h(") {
		t.Fatalf("%sui.js: %d %q", prefix, resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if resp, _ := get(t, srv, "GET", "/a/000000000000/ui.js"); resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("an older version's ui.js: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if resp, _ := get(t, srv, "GET", prefix+"nope.js"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("%snope.js: %d", prefix, resp.StatusCode)
	}
	for _, path := range []string{"/", "/runs/01M8TGB08QEC7BVEANP02CKZ91", "/app.js", "/style.css", prefix + "app.js"} {
		resp, _ := get(t, srv, "GET", path)
		tag := resp.Header.Get("ETag")
		if tag == "" {
			t.Fatalf("%s: no ETag", path)
		}
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("If-None-Match", tag)
		again, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("%s again with its ETag: %d, want 304", path, again.StatusCode)
		}
	}
}
