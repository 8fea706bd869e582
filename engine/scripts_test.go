package engine_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/engine"
	_ "github.com/droverhq/drover/starlark/builtins/all"
)

// TestScripts runs every testdata/scripts/*.star file; see its README.md for
// the comments that say what each script must do.
func TestScripts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/json":
			w.Write([]byte(`{"ok": true}`))
		case r.URL.Path == "/status/500":
			w.WriteHeader(500)
		case r.URL.Path == "/big":
			w.Write([]byte(strings.Repeat("x", 8192)))
		case r.URL.Path == "/slow":
			select { // never answers in time: held until the client gives up
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	n, err := engine.NewNode(context.Background(), engine.Options{Name: "scripts", DataDir: t.TempDir(), PayloadLimit: 4096, MaxExecSteps: 100000})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())

	files, _ := filepath.Glob("../testdata/scripts/*.star")
	t.Run("group", func(t *testing.T) { // parallel subtests end before the deferred Close
		for _, path := range files {
			runScriptFile(t, n, srv.URL, path)
		}
	})
}

func runScriptFile(t *testing.T, n *engine.Node, server, path string) {
	{
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".star"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			src := string(data)
			header := func(key string) string {
				for _, line := range strings.Split(src, "\n") {
					if v, ok := strings.CutPrefix(line, "# "+key+": "); ok {
						return strings.ReplaceAll(v, "{{server}}", server)
					}
				}
				return ""
			}
			wantLine, wantMark := 0, ""
			for i, line := range strings.Split(src, "\n") {
				if _, mark, ok := strings.Cut(line, "### "); ok {
					wantLine, wantMark = i+1, mark
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := n.Start(ctx, api.StartRequest{
				Script: api.Script{Name: name, Main: name, Files: map[string]string{name: src}},
				Input:  json.RawMessage(header("input")),
			})
			if want := header("compile-error"); want != "" {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("compile error = %v, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			end, err := n.Wait(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := header("want"); want != "" {
				if end.Status != api.StatusCompleted || string(end.Result) != want {
					t.Fatalf("status %s result %s error %v\nwant %s", end.Status, end.Result, end.Error, want)
				}
				return
			}
			if end.Status != api.StatusFailed || end.Error == nil {
				t.Fatalf("status %s, want failed", end.Status)
			}
			msg := end.Error.Message + "\n" + end.Error.Backtrace
			if want := header("error"); want != "" && !strings.Contains(msg, want) {
				t.Fatalf("error:\n%s\nwant %q", msg, want)
			}
			if wantMark != "" {
				if !regexp.MustCompile(wantMark).MatchString(msg) {
					t.Fatalf("error:\n%s\nwant match for %q", msg, wantMark)
				}
				pos := regexp.MustCompile(regexp.QuoteMeta(name) + ":" + itoa(wantLine) + ":")
				if !pos.MatchString(end.Error.Backtrace) {
					t.Fatalf("backtrace does not point at line %d:\n%s", wantLine, end.Error.Backtrace)
				}
			}
			if wantMark == "" && header("error") == "" {
				t.Fatal("script says nothing about what it must do (add # want, # error or ###)")
			}
			// Steps journaled before the failure are kept.
			d, err := n.Get(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range d.Steps {
				if s.Outcome == "pending" {
					t.Errorf("step %s (%s) left pending", s.ID, s.Builtin)
				}
			}
		})
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
