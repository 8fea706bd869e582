package journal

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
)

func TestStoreWritesOnceAndReadsInOrder(t *testing.T) {
	s := NewStore(bustest.Open(t, bus.Options{}))
	ctx := context.Background()
	run := ulid.Make().String()
	if err := s.Append(ctx, run, api.EntryStart, "", api.StartEntry{Run: run, Script: "t"}); err != nil {
		t.Fatal(err)
	}
	call := api.CallEntry{Step: "1", Builtin: "t.echo", Args: json.RawMessage(`{"a":"<b>"}`)}
	p, err := s.AppendAsync(run, api.EntryCall, "1", call)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Result(ctx, run, "1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("result before it is written: %v, want ErrNotFound", err)
	}
	res, err := s.AppendResult(ctx, run, api.ResultEntry{Step: "1", Value: json.RawMessage(`1`), Node: "n1"})
	if err != nil || string(res.Value) != "1" {
		t.Fatalf("first result: %+v %v", res, err)
	}
	// A second writer's result does not replace the first: the first is
	// returned to it.
	res, err = s.AppendResult(ctx, run, api.ResultEntry{Step: "1", Value: json.RawMessage(`2`), Node: "n2"})
	if err != nil || string(res.Value) != "1" || res.Node != "n1" {
		t.Fatalf("second result: %+v %v, want the first", res, err)
	}
	if err := s.Append(ctx, run, api.EntryResult, "1", api.ResultEntry{Step: "1", Value: json.RawMessage(`3`)}); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite: %v, want ErrExists", err)
	}
	got, err := s.Result(ctx, run, "1")
	if err != nil || string(got.Value) != "1" {
		t.Fatalf("result: %+v %v", got, err)
	}
	recs, err := s.Read(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i, r := range recs {
		kinds = append(kinds, string(r.Kind)+"."+r.Key)
		if i > 0 && r.Seq <= recs[i-1].Seq {
			t.Errorf("sequences out of order: %d after %d", r.Seq, recs[i-1].Seq)
		}
	}
	if strings.Join(kinds, " ") != "start. call.1 result.1" {
		t.Fatalf("entries %v", kinds)
	}
	// Arguments keep their exact bytes (replay compares them).
	if !strings.Contains(string(recs[1].Data), `{"a":"<b>"}`) {
		t.Errorf("call entry %s", recs[1].Data)
	}
	// Follow delivers what is stored, then what comes.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var followed []string
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(ctx, run, func(r Record) bool {
			followed = append(followed, string(r.Kind))
			return r.Kind != api.EntryEnd
		})
	}()
	if err := s.Append(ctx, run, api.EntryEnd, "", api.EndEntry{Status: api.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Join(followed, " ") != "start call result end" {
		t.Fatalf("followed %v", followed)
	}
}

func entries(t *testing.T, kvs ...any) []api.JournalEntry {
	t.Helper()
	var out []api.JournalEntry
	for i := 0; i < len(kvs); i += 3 {
		data, err := json.Marshal(kvs[i+2])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, api.JournalEntry{Kind: kvs[i].(api.EntryKind), Key: kvs[i+1].(string), Data: data})
	}
	return out
}

func TestParse(t *testing.T) {
	start := api.StartEntry{Run: "r", Hash: "h1"}
	call := func(id, builtin, args string) api.CallEntry {
		return api.CallEntry{Step: id, Builtin: builtin, Args: json.RawMessage(args), Pos: "t.star:1:1"}
	}
	j, err := Parse(entries(t,
		api.EntryStart, "", start,
		api.EntryTag, "1", api.TagEntry{Attrs: map[string]string{"k": "v"}},
		api.EntryCall, "1", call("1", "t.echo", `{"a":1,"b":2}`),
		api.EntryResult, "1", api.ResultEntry{Step: "1", Value: json.RawMessage(`1`)},
		api.EntryCall, "2", call("2", "t.echo", `2`),
		api.EntryPlace, "2@2", api.PlaceEntry{Step: "2", Attempt: 2, Node: "n2"},
		api.EntryPatch, "p", api.PatchEntry{Value: true},
		api.EntryVersion, "1", api.VersionEntry{Hash: "h2"},
		api.EntryResult, "4", api.ResultEntry{Step: "4", Value: json.RawMessage(`4`), Call: &api.CallEntry{Step: "4", Builtin: "t.echo", Args: json.RawMessage(`4`)}},
	))
	if err != nil {
		t.Fatal(err)
	}
	if j.Hash() != "h2" || len(j.Tags) != 1 || len(j.Places["2"]) != 1 || !j.Patches["p"].Value || j.End != nil {
		t.Fatalf("journal %+v", j)
	}
	pos := func() string { return "new.star:9:9" }
	// The same call, its arguments re-encoded, matches.
	if c, r, err := j.Match("1", "t.echo", json.RawMessage(`{ "b": 2, "a": 1 }`), pos); err != nil || c == nil || string(r.Value) != "1" {
		t.Fatalf("match 1: %v %v %v", c, r, err)
	}
	// A call with no result yet, and one past the journal's end.
	if c, r, err := j.Match("2", "t.echo", json.RawMessage(`2`), pos); err != nil || c == nil || r != nil {
		t.Fatalf("match 2: %v %v %v", c, r, err)
	}
	if c, r, err := j.Match("3", "t.echo", json.RawMessage(`3`), pos); err != nil || c != nil || r != nil {
		t.Fatalf("match 3: %v %v %v", c, r, err)
	}
	// A call journaled in its result entry (a co-located step).
	if c, r, err := j.Match("4", "t.echo", json.RawMessage(`4`), pos); err != nil || c == nil || string(r.Value) != "4" {
		t.Fatalf("match 4 (folded): %v %v %v", c, r, err)
	}
	var de *api.DivergenceError
	if _, _, err := j.Match("4", "t.other", json.RawMessage(`4`), pos); !errors.As(err, &de) {
		t.Fatalf("folded call, different builtin: %v", err)
	}
	if _, _, err := j.Match("1", "t.other", json.RawMessage(`{"a":1,"b":2}`), pos); !errors.As(err, &de) || de.Journaled.Builtin != "t.echo" || de.New.Pos != "new.star:9:9" {
		t.Fatalf("different builtin: %v", err)
	}
	if err := j.Unvisited(map[string]bool{"1": true, "4": true}); !errors.As(err, &de) || de.Step != "2" || de.Missing != 1 {
		t.Fatalf("unvisited: %v", err)
	}

	for _, tt := range []struct {
		name    string
		entries []api.JournalEntry
		want    string
	}{
		{"no start", entries(t, api.EntryCall, "1", call("1", "t.echo", "1")), "no start entry"},
		{"unknown kind", append(entries(t, api.EntryStart, "", start), api.JournalEntry{Kind: "gossip", Data: json.RawMessage(`{}`)}), `unknown entry kind "gossip"`},
		{"corrupt", append(entries(t, api.EntryStart, "", start), api.JournalEntry{Kind: api.EntryResult, Key: "1", Data: json.RawMessage(`{"step":`)}), "journal entry 2 (result 1) is corrupt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.entries); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestStepLess(t *testing.T) {
	ids := []string{"10", "2", "3.2.1", "3.10", "3.2", "1", "3.1.5"}
	sort.Slice(ids, func(a, b int) bool { return StepLess(ids[a], ids[b]) })
	if got := strings.Join(ids, " "); got != "1 2 3.1.5 3.2 3.2.1 3.10 10" {
		t.Fatalf("sorted %s", got)
	}
}

func TestParseExportRefusesBadFiles(t *testing.T) {
	s := api.Script{Name: "t", Main: "t.star", Files: map[string]string{"t.star": "def main(input):\n    pass\n"}}
	good := api.Export{Format: api.ExportFormat, Run: api.Run{ID: "r", Hash: s.Hash()}, Script: s,
		Journal: entries(t, api.EntryStart, "", api.StartEntry{Run: "r"})}
	data, _ := json.Marshal(good)
	if _, err := ParseExport(data); err != nil {
		t.Fatal(err)
	}
	edited := good
	edited.Script.Files = map[string]string{"t.star": "def main(input):\n    return 1\n"}
	noStart := good
	noStart.Journal = nil
	other := good
	other.Format = "drover.run/v9"
	for _, tt := range []struct {
		name string
		v    any
		want string
	}{
		{"not JSON", "{", "not a Drover run file"},
		{"no format", map[string]any{"run": map[string]any{}}, `no "format" field`},
		{"other format", other, `format "drover.run/v9" is not supported`},
		{"journal without start", noStart, "no start entry"},
		{"edited script", edited, "does not match the run's version hash"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw, ok := tt.v.(string)
			if !ok {
				b, _ := json.Marshal(tt.v)
				raw = string(b)
			}
			_, err := ParseExport([]byte(raw))
			if !errors.Is(err, api.ErrBadInput) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrBadInput with %q", err, tt.want)
			}
		})
	}
}

// LookupResult tells "not journaled" (nil) from "the journal did not answer"
// (it asks again until its context ends, then fails).
func TestLookupResult(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	s := NewStore(b)
	ctx := context.Background()
	run := ulid.Make().String()
	if res, err := s.LookupResult(ctx, run, "1"); res != nil || err != nil {
		t.Fatalf("before the result: %+v %v, want nil, nil", res, err)
	}
	if _, err := s.AppendResult(ctx, run, api.ResultEntry{Step: "1", Value: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	if res, err := s.LookupResult(ctx, run, "1"); err != nil || string(res.Value) != "1" {
		t.Fatalf("after the result: %+v %v", res, err)
	}
	b.Close()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if res, err := s.LookupResult(short, run, "1"); res != nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "step 1 of run "+run) {
		t.Fatalf("journal closed: %+v %v, want the deadline, naming the step", res, err)
	}
}

// Unacked appends without waiting; Wait returns once all are acknowledged,
// and the entries are then read back in the order they were appended.
func TestUnacked(t *testing.T) {
	s := NewStore(bustest.Open(t, bus.Options{}))
	ctx := context.Background()
	run := ulid.Make().String()
	u := s.Unacked(run)
	if err := u.Wait(ctx); err != nil {
		t.Fatalf("nothing appended: %v", err)
	}
	for _, id := range []string{"1", "2", "3"} {
		if err := u.Append(api.EntryCall, id, api.CallEntry{Step: id, Builtin: "t.echo"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Read(ctx, run)
	if err != nil || len(recs) != 3 || recs[0].Key != "1" || recs[2].Key != "3" {
		t.Fatalf("read back %d entries: %v", len(recs), err)
	}
}
