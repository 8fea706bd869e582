package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestReplayCancelAgainstEngine drives a real engine process with ctl: a run's
// replay makes zero outside calls (the API counts requests), its export replays
// with no node at all, a changed script diverges with exit 3, and a parked run
// is cancelled with who and why in `runs show`.
func TestReplayCancelAgainstEngine(t *testing.T) {
	var hits atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"price": 42}`))
	}))
	defer api.Close()
	eng := startEngine(t, t.TempDir())
	env := []string{"DROVER_URL=" + eng.url}
	dir := t.TempDir()
	src := "def main(input):\n    p = http.get(input['url'] + '/price?sku=a&n=1').json['price']\n    return {'price': p, 'order': uuid()}\n"
	os.WriteFile(filepath.Join(dir, "order.star"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "changed.star"), []byte(strings.Replace(src, "sku=a", "sku=b", 1)), 0o644)
	out, errOut, code := ctl(t, env, "run", filepath.Join(dir, "order.star"), "--input", `{"url": "`+api.URL+`"}`)
	id := runIDRe.FindString(errOut)
	if code != 0 || id == "" || hits.Load() != 1 {
		t.Fatalf("run: exit %d hits %d\n%s\n%s", code, hits.Load(), out, errOut)
	}
	replayed, errOut, code := ctl(t, env, "replay", id)
	if code != 0 || replayed != out || hits.Load() != 1 || !strings.Contains(errOut, "replayed 2 of 2 steps") {
		t.Fatalf("replay: exit %d hits %d\n%s\nwant %s\n%s", code, hits.Load(), replayed, out, errOut)
	}
	file := filepath.Join(dir, "run.json")
	if _, errOut, code = ctl(t, env, "runs", "export", id, "-o", file); code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	eng.cmd.Process.Kill() // no node from here on
	eng.wait()
	noNode := []string{"DROVER_URL=http://127.0.0.1:1", "DROVER_DATA=" + t.TempDir()}
	if replayed, errOut, code = ctl(t, noNode, "replay", "--from", file); code != 0 || replayed != out || hits.Load() != 1 {
		t.Fatalf("replay --from: exit %d\n%s\n%s", code, replayed, errOut)
	}
	_, errOut, code = ctl(t, noNode, "replay", "--from", file, "--script", filepath.Join(dir, "changed.star"))
	if code != 3 || !strings.Contains(errOut, "non-determinism at step 1") || !strings.Contains(errOut, "sku=a&n=1") || !strings.Contains(errOut, "sku=b&n=1") {
		t.Fatalf("divergence: exit %d\n%s", code, errOut)
	}

	eng2 := startEngine(t, t.TempDir())
	env = []string{"DROVER_URL=" + eng2.url}
	os.WriteFile(filepath.Join(dir, "nap.star"), []byte("def main(input):\n    sleep('1h')\n"), 0o644)
	out, errOut, code = ctl(t, env, "run", filepath.Join(dir, "nap.star"), "--detach")
	id = strings.TrimSpace(out)
	if code != 0 {
		t.Fatalf("detach: %d %s", code, errOut)
	}
	if out, errOut, code = ctl(t, env, "cancel", id, "--reason", "customer asked"); code != 0 {
		t.Fatalf("cancel: %d %s %s", code, out, errOut)
	}
	out, _, _ = ctl(t, env, "runs", "show", id)
	if !strings.Contains(out, "cancelled") || !strings.Contains(out, ": customer asked") {
		t.Fatalf("show after cancel:\n%s", out)
	}
}
