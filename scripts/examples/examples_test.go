// Package examples_test runs every script in scripts/examples, as CI must.
package examples_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/engine"
	_ "github.com/droverhq/drover/starlark/builtins/all"
)

// inputs gives each example the input it needs; {{server}} is replaced by the
// URL of a local HTTP server standing in for the outside world.
var inputs = map[string]string{
	"hello.star":    `{"who": "acme"}`,
	"fetch.star":    `{"url": "{{server}}/v1/health"}`,
	"checkout.star": `{"customer": "acme", "skus": ["apple", "fig", "pear"], "coupon": "WELCOME10"}`,
}

func TestExamples(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok": true}`))
	}))
	defer srv.Close()
	n, err := engine.NewNode(context.Background(), engine.Options{Name: "ex", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	files, _ := filepath.Glob("*.star")
	if len(files) < 2 {
		t.Fatalf("found %d examples", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, ok := inputs[f]
			if !ok {
				t.Fatalf("add an input for %s to the inputs table", f)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := n.Start(ctx, api.StartRequest{
				Script: api.Script{Name: strings.TrimSuffix(f, ".star"), Main: f, Files: map[string]string{f: string(src)}},
				Input:  json.RawMessage(strings.ReplaceAll(in, "{{server}}", srv.URL)),
			})
			if err != nil {
				t.Fatal(err)
			}
			end, err := n.Wait(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if end.Status != api.StatusCompleted {
				t.Fatalf("%s ended %s: %v", f, end.Status, end.Error)
			}
			if end.Steps == 0 {
				t.Fatalf("%s made no steps", f)
			}
		})
	}
}
