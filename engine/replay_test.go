package engine

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/replay"
)

const replaySrc = `
def main(input):
    a = test.echo({"order": 1})
    both = parallel([lambda: test.echo("x"), lambda: test.echo("y")])
    return {"a": a, "both": both, "c": test.echo(input["customer"])}
`

func TestReplayMakesNoCallsAndMatches(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	end := runScript(t, n, replaySrc, `{"customer": "acme"}`)
	if end.Status != api.StatusCompleted {
		t.Fatal(end.Error)
	}
	exp, err := n.Export(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	before := execs.Load()
	rep, err := replay.Replay(context.Background(), exp, replay.Options{Registry: testRegistry(&execs)})
	if err != nil {
		t.Fatal(err)
	}
	if execs.Load() != before {
		t.Fatalf("replay executed %d steps", execs.Load()-before)
	}
	if !rep.Matches || rep.Steps != 4 || rep.Journaled != 4 || string(rep.Result) != string(end.Result) || rep.Partial {
		t.Fatalf("report %+v", rep)
	}
	// Through the portable file format.
	data, _ := json.Marshal(exp)
	exp2, err := journal.ParseExport(data)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := replay.Replay(context.Background(), exp2, replay.Options{Registry: testRegistry(&execs)}); err != nil || !rep.Matches {
		t.Fatalf("replay from file: %v %+v", err, rep)
	}
}

func TestReplayDivergence(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	end := runScript(t, n, replaySrc, `{"customer": "acme"}`)
	exp, err := n.Export(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, src string
		want      []string
	}{
		{"different args", strings.Replace(replaySrc, `"order": 1`, `"order": 2`, 1),
			[]string{"non-determinism at step 1", `journaled: test.echo({"order":1}) at t.star:3:18`, `new:       test.echo({"order":2}) at t.star:3:18`}},
		{"different builtin in a branch", strings.Replace(replaySrc, `test.echo("y")`, `test.flaky()`, 1),
			[]string{"non-determinism at step 2.2.1", `journaled: test.echo("y")`, `new:       test.flaky(null) at t.star:4:64`}},
		{"fewer steps", strings.Replace(replaySrc, `"c": test.echo(input["customer"])`, `"c": "acme"`, 1),
			[]string{"non-determinism at step 3", "ended without making 1 journaled call(s)", `journaled: test.echo("acme")`}},
		{"more steps", strings.Replace(replaySrc, `test.echo(input["customer"])}`, `test.echo(input["customer"]), "d": test.echo("extra")}`, 1),
			[]string{"non-determinism at step 4", "a call the journal does not hold", `new:       test.echo("extra") at t.star:5:`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testScript(tt.src)
			rep, err := replay.Replay(context.Background(), exp, replay.Options{Script: &s, Registry: testRegistry(&execs)})
			var de *api.DivergenceError
			if !errors.As(err, &de) || rep == nil || rep.Divergence == nil {
				t.Fatalf("err = %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(de.Error(), w) {
					t.Errorf("divergence:\n%s\nwant %q", de.Error(), w)
				}
			}
		})
	}
}

func TestReplayOfRunningRunReplaysPrefix(t *testing.T) {
	var execs, holds atomic.Int64
	held := make(chan struct{})
	n := newTestNode(t, Options{Registry: recoveryRegistry(&execs, &holds, held)})
	r, err := n.Start(context.Background(), api.StartRequest{Script: testScript(recoverScript)})
	if err != nil {
		t.Fatal(err)
	}
	<-held
	exp, err := n.Export(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replay.Replay(context.Background(), exp, replay.Options{Registry: testRegistry(&execs)})
	if err != nil || !rep.Partial || rep.Steps != 5 {
		t.Fatalf("prefix replay: %v %+v", err, rep)
	}
}

func TestParseExportErrors(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	end := runScript(t, n, replaySrc, `{"customer": "acme"}`)
	exp, _ := n.Export(context.Background(), end.ID)
	good, _ := json.Marshal(exp)
	exp.Script.Files["t.star"] += "\n# edited\n"
	edited, _ := json.Marshal(exp)
	for _, tt := range []struct{ name, data, want string }{
		{"truncated", string(good[:len(good)/2]), "truncated or corrupted JSON"},
		{"not a run file", `{"hello": 1}`, `no "format" field`},
		{"future format", `{"format": "drover.run/v9"}`, `format "drover.run/v9" is not supported`},
		{"edited script", string(edited), "does not match the run's version hash"},
		{"corrupt entry", strings.Replace(string(good), `"kind":"call"`, `"kind":"bogus"`, 1), `unknown entry kind "bogus"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := journal.ParseExport([]byte(tt.data))
			if !errors.Is(err, api.ErrBadInput) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestAcceptedRunStartsAfterCrash: a run journaled as started whose script never
// ran (the node died right after accepting it) runs on restart.
func TestAcceptedRunStartsAfterCrash(t *testing.T) {
	var execs atomic.Int64
	dir := t.TempDir()
	n, err := NewNode(context.Background(), Options{Name: "n1", DataDir: dir, Registry: testRegistry(&execs)})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := n.compiler.Compile(testScript("def main(input):\n    return test.echo(input)\n"))
	if err != nil {
		t.Fatal(err)
	}
	n.runsWG.Add(1)
	r, err := n.begin(context.Background(), prog, n.newRunID(time.Now()), "t", 0, json.RawMessage(`"accepted"`), nil, "", false)
	if err != nil {
		t.Fatal(err)
	}
	n.runsWG.Done() // never executed: as if the process died here
	n.Close(context.Background())
	n2 := newTestNode(t, Options{Name: "n1", DataDir: dir, Registry: testRegistry(&execs)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	end, err := n2.Wait(ctx, r.id)
	if err != nil || end.Status != api.StatusCompleted || string(end.Result) != `"accepted"` {
		t.Fatalf("%v %+v", err, end)
	}
}

// TestReplayArgsWithHTMLCharacters: arguments holding <, > and & (any URL with
// a query string) are journaled byte for byte, and a re-indented export file
// still replays.
func TestReplayArgsWithHTMLCharacters(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	end := runScript(t, n, "def main(input):\n    return test.echo('https://api/x?a=1&b=<2>')\n", "")
	exp, err := n.Export(context.Background(), end.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := replay.Replay(context.Background(), exp, replay.Options{Registry: testRegistry(&execs)}); err != nil || !rep.Matches {
		t.Fatalf("replay: %v %+v", err, rep)
	}
	indented, _ := json.MarshalIndent(exp, "", "  ") // escapes & and re-indents every entry
	exp2, err := journal.ParseExport(indented)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := replay.Replay(context.Background(), exp2, replay.Options{Registry: testRegistry(&execs)}); err != nil || !rep.Matches {
		t.Fatalf("replay of re-indented file: %v %+v", err, rep)
	}
}
