package replay

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/tag"
)

// registry has t.echo(x), which returns x.
func registry() *builtins.Registry {
	r := builtins.NewRegistry()
	r.MustRegister(builtinstest.Echo("t.echo"))
	tag.Register(r)
	return r
}

// live records what reaches it and answers steps with "live-<id>".
type live struct {
	mu      sync.Mutex
	steps   []string // id, and "+call" when the journal held the call
	tags    []string // seq:attrs
	patches []string
}

func (l *live) Step(_ *starlark.Thread, _ *builtins.Step, id string, _ json.RawMessage, _ string, call *api.CallEntry) (json.RawMessage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := id
	if call != nil {
		s += "+call"
	}
	l.steps = append(l.steps, s)
	return json.Marshal("live-" + id)
}

func (l *live) Tag(_ *starlark.Thread, seq int, attrs map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, _ := json.Marshal(attrs)
	l.tags = append(l.tags, strconv.Itoa(seq)+":"+string(b))
	return nil
}

func (l *live) Patch(_ *starlark.Thread, id string, value bool) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.patches = append(l.patches, id+"="+strconv.FormatBool(value))
	return value, nil
}

func (l *live) Logger(*starlark.Thread) *zerolog.Logger {
	n := zerolog.Nop()
	return &n
}

// journalOf builds a journal from (kind, key, entry) triples after a start.
func journalOf(t *testing.T, kvs ...any) []api.JournalEntry {
	t.Helper()
	start, _ := json.Marshal(api.StartEntry{Run: "r", Input: json.RawMessage("null")})
	out := []api.JournalEntry{{Kind: api.EntryStart, Data: start}}
	for i := 0; i < len(kvs); i += 3 {
		data, _ := json.Marshal(kvs[i+2])
		out = append(out, api.JournalEntry{Kind: kvs[i].(api.EntryKind), Key: kvs[i+1].(string), Data: data})
	}
	return out
}

func call(id, args string) api.CallEntry {
	return api.CallEntry{Step: id, Builtin: "t.echo", Args: json.RawMessage(args), Pos: "t.star:1:1"}
}

func result(id, value string) api.ResultEntry {
	return api.ResultEntry{Step: id, Value: json.RawMessage(value)}
}

func run(t *testing.T, src string, entries []api.JournalEntry, l Live) (json.RawMessage, *api.RunError, *Runtime) {
	t.Helper()
	prog, err := script.Compile(api.Script{Name: "t", Main: "t.star", Files: map[string]string{"t.star": src}}, script.Globals(registry()))
	if err != nil {
		t.Fatal(err)
	}
	var j *journal.Journal
	if entries != nil {
		if j, err = journal.Parse(entries); err != nil {
			t.Fatal(err)
		}
	}
	rt := New(j, l)
	out, re := script.Run(context.Background(), prog, rt, nil, script.Options{})
	return out, re, rt
}

const src = `
def main(input):
    tag(customer = "acme")
    a = t.echo(1)
    if patched("p1"):
        pass
    b = t.echo(2)
    tag(tier = "gold")
    return [a, b, t.echo(3)]
`

// TestRuntimeFallsThroughWhereTheJournalEnds: steps the journal holds are
// answered from it; a call it holds without a result and the steps after it
// go live; tags and patch decisions the journal holds are not journaled
// again.
func TestRuntimeFallsThroughWhereTheJournalEnds(t *testing.T) {
	l := &live{}
	entries := journalOf(t,
		api.EntryTag, "1", api.TagEntry{Attrs: map[string]string{"customer": "acme"}},
		api.EntryCall, "1", call("1", "1"),
		api.EntryResult, "1", result("1", `"journaled-1"`),
		api.EntryCall, "2", call("2", "2"),
	)
	out, re, rt := run(t, src, entries, l)
	if re != nil {
		t.Fatal(re)
	}
	if string(out) != `["journaled-1","live-2","live-3"]` || rt.Replayed() != 1 {
		t.Fatalf("result %s, replayed %d", out, rt.Replayed())
	}
	if strings.Join(l.steps, " ") != "2+call 3" {
		t.Errorf("live steps %v", l.steps)
	}
	if strings.Join(l.tags, " ") != `2:{"tier":"gold"}` {
		t.Errorf("live tags %v, want only the second, as tag 2", l.tags)
	}
	// patched() was reached while the journal still held calls ahead: the
	// original run took the old path there.
	if strings.Join(l.patches, " ") != "p1=false" {
		t.Errorf("patches %v", l.patches)
	}
	if err := rt.Unvisited(); err != nil {
		t.Errorf("unvisited: %v", err)
	}
}

func TestRuntimeNewRunIsAllLive(t *testing.T) {
	l := &live{}
	out, re, _ := run(t, src, nil, l)
	if re != nil || string(out) != `["live-1","live-2","live-3"]` {
		t.Fatalf("%s %v", out, re)
	}
	if strings.Join(l.tags, " ") != `1:{"customer":"acme"} 2:{"tier":"gold"}` || strings.Join(l.patches, " ") != "p1=true" {
		t.Fatalf("tags %v patches %v", l.tags, l.patches)
	}
}

func TestRuntimeDivergence(t *testing.T) {
	entries := journalOf(t, api.EntryCall, "1", call("1", "99"), api.EntryResult, "1", result("1", "99"))
	_, re, _ := run(t, src, entries, &live{})
	if re == nil || re.Code != api.CodeNonDeterminism || !strings.Contains(re.Message, "t.echo(99)") {
		t.Fatalf("run error %+v, want a divergence at step 1", re)
	}
}

func TestReplay(t *testing.T) {
	s := api.Script{Name: "t", Main: "t.star", Files: map[string]string{"t.star": "def main(input):\n    return [t.echo(1), t.echo(2)]\n"}}
	end := func(result string) any {
		return api.EndEntry{Status: api.StatusCompleted, Result: json.RawMessage(result)}
	}
	full := journalOf(t,
		api.EntryCall, "1", call("1", "1"), api.EntryResult, "1", result("1", "1"),
		api.EntryCall, "2", call("2", "2"), api.EntryResult, "2", result("2", "2"))
	export := func(entries []api.JournalEntry) *api.Export {
		return &api.Export{Format: api.ExportFormat, Run: api.Run{ID: "r", Hash: s.Hash()}, Script: s, Journal: entries}
	}
	rep, err := Replay(context.Background(), export(append(full, journalOf(t, api.EntryEnd, "", end("[1,2]"))[1:]...)), Options{Registry: registry()})
	if err != nil || !rep.Matches || rep.Steps != 2 || rep.Partial {
		t.Fatalf("replay of a finished run: %+v %v", rep, err)
	}
	// A run still going is replayed up to its journal's end.
	rep, err = Replay(context.Background(), export(full[:3]), Options{Registry: registry()})
	if err != nil || !rep.Partial || rep.Steps != 1 {
		t.Fatalf("replay of a run still going: %+v %v", rep, err)
	}
	// Another script that makes fewer calls diverges.
	fewer := api.Script{Name: "t", Main: "t.star", Files: map[string]string{"t.star": "def main(input):\n    return [t.echo(1)]\n"}}
	rep, err = Replay(context.Background(), export(append(full, journalOf(t, api.EntryEnd, "", end("[1,2]"))[1:]...)), Options{Registry: registry(), Script: &fewer})
	var de *api.DivergenceError
	if !errors.As(err, &de) || de.Missing != 1 || rep.Divergence == nil {
		t.Fatalf("replay of fewer calls: %+v %v", rep, err)
	}
}
