// Command mkfixture wrote ../datadir-unsealed.tar.gz: a data dir with the
// journal layout before journals were sealed (one subject per entry), and
// the exports of its ended runs. It was run from a checkout of commit
// 67c8bb4 (copied to cmd/mkfixture there): go run ./cmd/mkfixture DIR, with
// DIR/exports created first; then DIR/data/LOCK removed and DIR's data and
// exports archived.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/engine"
	_ "github.com/droverhq/drover/starlark/builtins/all"
)

func main() {
	dir := os.Args[1]
	ctx := context.Background()
	n, err := engine.NewNode(ctx, engine.Options{Name: "old", DataDir: filepath.Join(dir, "data"), Sync: bus.SyncAlways})
	if err != nil {
		panic(err)
	}
	script := func(name, src string) api.Script {
		return api.Script{Name: name, Main: name + ".star", Files: map[string]string{name + ".star": src}}
	}
	var ended []string
	run := func(s api.Script, input string, wait bool) string {
		r, err := n.Start(ctx, api.StartRequest{Script: s, Input: json.RawMessage(input), Attrs: map[string]string{"fixture": s.Name}})
		if err != nil {
			panic(err)
		}
		if wait {
			if _, err := n.Wait(ctx, r.ID); err != nil {
				panic(err)
			}
			ended = append(ended, r.ID)
		}
		return r.ID
	}
	run(script("steps", `
def main(input):
    tag(customer = input["who"])
    kv.put("visits/" + input["who"], 1)
    out = [kv.get("visits/" + input["who"]), rand.int(1000), uuid(), time.now().unix]
    if patched("fix-1"):
        out.append("patched")
    out.append(parallel([lambda: kv.get("a"), lambda: kv.get("b")]))
    for i in range(20):
        out.append(kv.get("visits/" + input["who"]))
    return out
`), `{"who": "acme"}`, true)
	run(script("boom", `
def main(input):
    kv.put("x", 1)
    fail("boom")
`), `null`, true)
	parked := run(script("parked", `
def main(input):
    kv.put("p", 1)
    sleep("1h")
    return "woke"
`), `null`, false)
	cancelled := run(script("cancelled", `
def main(input):
    kv.put("c", 1)
    sleep("1h")
    return "never"
`), `null`, false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, _ := n.Get(ctx, parked)
		c, _ := n.Get(ctx, cancelled)
		if p != nil && c != nil && p.WakeAt != nil && c.WakeAt != nil {
			break
		}
		if time.Now().After(deadline) {
			panic("runs did not park")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := n.Cancel(ctx, cancelled, "fixture", "made cancelled"); err != nil {
		panic(err)
	}
	if _, err := n.Wait(ctx, cancelled); err != nil {
		panic(err)
	}
	ended = append(ended, cancelled)
	for _, id := range ended {
		exp, err := n.Export(ctx, id)
		if err != nil {
			panic(err)
		}
		data, _ := json.MarshalIndent(exp, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "exports", id+".json"), data, 0o644); err != nil {
			panic(err)
		}
	}
	fmt.Println("parked", parked)
	n.Close(ctx)
}
