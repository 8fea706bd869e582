package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// writeBundle writes a two-file bundle whose answer names its version.
func writeBundle(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "main.star"), []byte(`load("lib/answer.star", "answer")

def main(input):
    kv.put("last/" + input["who"], time.now().unix)
    return answer(input["who"])
`), 0o644)
	os.WriteFile(filepath.Join(dir, "lib", "answer.star"), []byte(`def answer(who):
    return {"version": "`+version+`", "who": who}
`), 0o644)
	return dir
}

// TestDeployUnderLoad is the deploy story with a real engine and ctl: deploy
// a bundle, call it over HTTP with a customer header, redeploy a changed
// bundle while clients keep calling (not one request fails, every answer is
// from exactly one version), refuse a broken bundle, roll back.
func TestDeployUnderLoad(t *testing.T) {
	eng := startEngine(t, t.TempDir(), "--attr-header", "X-Customer-Id=customer")
	env := []string{"DROVER_URL=" + eng.url}
	if out, errOut, code := ctl(t, env, "deploy", "greet", writeBundle(t, "v1"), "--by", "e2e"); code != 0 || !strings.Contains(out, "deployed greet version 1") {
		t.Fatalf("deploy: exit %d\n%s%s", code, out, errOut)
	}
	call := func(client *http.Client) (int, string, string) {
		req, _ := http.NewRequest(http.MethodPost, eng.url+"/v1/run/greet", strings.NewReader(`{"who": "acme"}`))
		req.Header.Set("X-Customer-Id", "acme")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error(), ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header.Get("Drover-Run-Id")
	}
	code, body, id := call(http.DefaultClient)
	if code != 200 || !strings.Contains(body, `"version":"v1"`) || id == "" {
		t.Fatalf("trigger: %d %s", code, body)
	}
	if out, _, _ := ctl(t, env, "runs", "ls", "--attr", "customer=acme"); !strings.Contains(out, id) {
		t.Fatalf("the triggered run is not found by its customer attribute:\n%s", out)
	}

	// Clients call without pause while v2, v1, v2 ... are deployed.
	var ok, failed, mixed atomic.Int64
	versions := map[string]*atomic.Int64{"v1": {}, "v2": {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, _ := call(client)
				switch {
				case code != 200:
					failed.Add(1)
					t.Errorf("request failed during deploys: %d %s", code, body)
				case strings.Contains(body, `"version":"v1"`) != !strings.Contains(body, `"version":"v2"`):
					mixed.Add(1)
				default:
					ok.Add(1)
					for v, n := range versions {
						if strings.Contains(body, `"version":"`+v+`"`) {
							n.Add(1)
						}
					}
				}
			}
		}()
	}
	bundles := map[string]string{"v1": writeBundle(t, "v1"), "v2": writeBundle(t, "v2")}
	for i := 0; i < 6; i++ {
		v := []string{"v2", "v1"}[i%2]
		if out, errOut, code := ctl(t, env, "deploy", "greet", bundles[v]); code != 0 {
			t.Errorf("deploy %s under load: exit %d\n%s%s", v, code, out, errOut)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || mixed.Load() > 0 || versions["v2"].Load() == 0 {
		t.Fatalf("under deploys: %d ok, %d failed, %d mixed, v1 %d, v2 %d", ok.Load(), failed.Load(), mixed.Load(), versions["v1"].Load(), versions["v2"].Load())
	}
	t.Logf("during 6 deploys: %d requests, none failed; v1 answered %d, v2 %d", ok.Load(), versions["v1"].Load(), versions["v2"].Load())

	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "main.star"), []byte("def main(input):\n    return answer(input)\n"), 0o644)
	if out, errOut, code := ctl(t, env, "deploy", "greet", broken); code != 1 || !strings.Contains(errOut, "main.star:2:12: undefined: answer") {
		t.Fatalf("broken deploy: exit %d\n%s%s", code, out, errOut)
	}
	if _, body, _ := call(http.DefaultClient); !strings.Contains(body, `"version":"v1"`) {
		t.Fatalf("after the refused deploy: %s", body)
	}
	if out, errOut, code := ctl(t, env, "rollback", "greet"); code != 0 || !strings.Contains(out, "rollback to version") {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errOut)
	}
	if _, body, _ := call(http.DefaultClient); !strings.Contains(body, `"version":"v2"`) {
		t.Fatalf("after the rollback: %s", body)
	}
	out, _, _ := ctl(t, env, "scripts", "history", "greet")
	if strings.Count(out, "\n") != 1+1+6+1 || !strings.Contains(out, "e2e") {
		t.Fatalf("history:\n%s", out)
	}
}
