package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
)

// logRun journals a run the way a coordinator would with a log: start, step
// results and end in the log; a dispatched step's result (a worker's) and a
// cancellation on subjects of their own, write-once.
func logRun(t *testing.T, s *Store) (run string, l *Log) {
	t.Helper()
	ctx := context.Background()
	run = ulid.Make().String()
	l = s.Log(run, true)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Append(ctx, api.EntryStart, "", api.StartEntry{Run: run, Script: "t"}))
	for i := 1; i <= 3; i++ {
		id := fmt.Sprint(i)
		call := &api.CallEntry{Step: id, Builtin: "t.echo", Args: json.RawMessage(`1`)}
		must(l.Append(ctx, api.EntryResult, id, api.ResultEntry{Step: id, Value: json.RawMessage(`"v"`), Call: call}))
	}
	must(l.Append(ctx, api.EntryCall, "4", api.CallEntry{Step: "4", Builtin: "t.remote"}))
	_, err := s.AppendResult(ctx, run, api.ResultEntry{Step: "4", Value: json.RawMessage(`"w"`), Node: "n2"})
	must(err)
	must(l.Append(ctx, api.EntryEnd, "", api.EndEntry{Status: api.StatusCompleted, Steps: 4}))
	return run, l
}

// TestLogReadsMergedAndWritesOnce: a run's log and its write-once subjects
// read as one journal in order; write-once still holds on a bus with logs;
// Get finds an entry in the log.
func TestLogReadsMergedAndWritesOnce(t *testing.T) {
	b := bustest.Open(t, bus.Options{RunLog: true})
	s := NewStore(b)
	ctx := context.Background()
	run, _ := logRun(t, s)
	recs := mustRead(t, s, run)
	want := []string{"start/", "result/1", "result/2", "result/3", "call/4", "result/4", "end/"}
	if len(recs) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(recs), len(want), recs)
	}
	for i, r := range recs {
		if got := string(r.Kind) + "/" + r.Key; got != want[i] || i > 0 && r.Seq <= recs[i-1].Seq {
			t.Fatalf("entry %d is %s (seq %d), want %s in sequence order", i, got, r.Seq, want[i])
		}
	}
	j, err := Parse(Entries(recs))
	if err != nil || j.Calls["2"] == nil || string(j.Results["4"].Value) != `"w"` || j.End == nil {
		t.Fatalf("parse: %v %+v", err, j)
	}
	if _, err := s.AppendResult(ctx, run, api.ResultEntry{Step: "4", Value: json.RawMessage(`"other"`)}); err != nil {
		t.Fatal(err)
	} else if res, _ := s.Result(ctx, run, "4"); string(res.Value) != `"w"` {
		t.Fatalf("a second result of step 4 replaced the first: %s", res.Value)
	}
	var end api.EndEntry
	if err := s.Get(ctx, run, api.EntryEnd, "", &end); err != nil || end.Steps != 4 {
		t.Fatalf("Get of the end entry in the log: %v %+v", err, end)
	}
	if err := s.Get(ctx, run, api.EntryTag, "1", &api.TagEntry{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an entry nowhere: %v", err)
	}
}

// TestLogFence: a writer whose view of the log is stale (another wrote
// since) is refused and nothing of it is stored; an append retried after its
// first try was stored succeeds once.
func TestLogFence(t *testing.T) {
	b := bustest.Open(t, bus.Options{RunLog: true})
	s := NewStore(b)
	ctx := context.Background()
	run := ulid.Make().String()
	a := s.Log(run, true)
	if err := a.Append(ctx, api.EntryStart, "", api.StartEntry{Run: run}); err != nil {
		t.Fatal(err)
	}
	adopter := s.Log(run, false) // reads the log's last sequence first
	if err := adopter.Append(ctx, api.EntryVersion, "1", api.VersionEntry{Hash: "h2"}); err != nil {
		t.Fatal(err)
	}
	err := a.Append(ctx, api.EntryResult, "1", api.ResultEntry{Step: "1", Value: json.RawMessage(`1`)})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("an append after another writer's: %v, want ErrFenced", err)
	}
	if recs := mustRead(t, s, run); len(recs) != 2 {
		t.Fatalf("the fenced append was stored: %+v", recs)
	}
	// A lost acknowledgement: the Log's view is behind its own stored entry.
	last := adopter.last
	if err := adopter.Append(ctx, api.EntryResult, "1", api.ResultEntry{Step: "1", Value: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	adopter.last = last
	if err := adopter.Append(ctx, api.EntryResult, "1", api.ResultEntry{Step: "1", Value: json.RawMessage(`1`)}); err != nil {
		t.Fatalf("a retried append whose first try was stored: %v", err)
	}
	if recs := mustRead(t, s, run); len(recs) != 3 {
		t.Fatalf("the retried append was stored twice: %+v", recs)
	}
}

// TestSealLog: a run whose journal is its log alone is left as it is (one
// subject already); a run with write-once subjects too is sealed, log
// included, and reads the same.
func TestSealLog(t *testing.T) {
	b := bustest.Open(t, bus.Options{RunLog: true})
	s := NewStore(b)
	ctx := context.Background()
	alone := ulid.Make().String()
	l := s.Log(alone, true)
	for _, e := range []struct {
		kind  api.EntryKind
		entry any
	}{{api.EntryStart, api.StartEntry{Run: alone}}, {api.EntryEnd, api.EndEntry{Status: api.StatusCompleted}}} {
		if err := l.Append(ctx, e.kind, "", e.entry); err != nil {
			t.Fatal(err)
		}
	}
	if sealed, err := s.Seal(ctx, alone); err != nil || sealed {
		t.Fatalf("seal of a log alone: %v %v, want nothing done", sealed, err)
	}
	if subs := subjects(t, b, alone); len(subs) != 1 {
		t.Fatalf("a log alone after Seal: subjects %v", subs)
	}
	run, _ := logRun(t, s)
	before := mustRead(t, s, run)
	if sealed, err := s.Seal(ctx, run); err != nil || !sealed {
		t.Fatalf("seal: %v %v", sealed, err)
	}
	if subs := subjects(t, b, run); len(subs) != 1 {
		t.Fatalf("after sealing: subjects %v, want one part", subs)
	}
	sameRecords(t, "after sealing", mustRead(t, s, run), before)
}

// TestLogEndWhereTheSweepFindsIt: with a log, the end of a run that has
// entries on subjects of their own (a step's result after its call) is on a
// subject of its own, so that a sweep finds the run, ended and not sealed,
// and seals it; a run whose journal is its log alone ends in its log.
func TestLogEndWhereTheSweepFindsIt(t *testing.T) {
	b := bustest.Open(t, bus.Options{RunLog: true})
	s := NewStore(b)
	ctx := context.Background()
	write := func(withCall bool) string {
		run := ulid.Make().String()
		p, err := s.AppendAsync(run, api.EntryStart, "", api.StartEntry{Run: run})
		if err == nil {
			err = p.Wait(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if withCall {
			if p, err = s.AppendAsync(run, api.EntryCall, "1", api.CallEntry{Step: "1", Builtin: "t.remote"}); err == nil {
				_, err = s.AppendResult(ctx, run, api.ResultEntry{Step: "1", Value: json.RawMessage(`1`)})
			}
		} else {
			_, err = s.AppendResult(ctx, run, api.ResultEntry{Step: "1", Value: json.RawMessage(`1`), Call: &api.CallEntry{Step: "1", Builtin: "t.echo"}})
		}
		if err != nil {
			t.Fatal(err)
		}
		if p, err = s.AppendAsync(run, api.EntryEnd, "", api.EndEntry{Status: api.StatusCompleted, Steps: 1}); err == nil {
			err = p.Wait(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	hybrid, alone := write(true), write(false)
	if subs := subjects(t, b, alone); len(subs) != 1 || !strings.HasSuffix(subs[0], ".log") {
		t.Fatalf("a run of folded steps: subjects %v, want its log alone", subs)
	}
	if !slices.Contains(subjects(t, b, hybrid), bus.JournalSubject(hybrid, "end", "")) {
		t.Fatalf("the end of a run with a result on its own subject is not on a subject of its own: %v", subjects(t, b, hybrid))
	}
	if n := s.NewSealer(SealerOptions{}).Sweep(ctx); n != 1 {
		t.Fatalf("the sweep sealed %d runs, want 1", n)
	}
	if subs := subjects(t, b, hybrid); len(subs) != 1 || !strings.HasSuffix(subs[0], ".sealed.0") {
		t.Fatalf("after the sweep: %v", subs)
	}
	recs := mustRead(t, s, hybrid)
	if len(recs) != 4 || recs[0].Kind != api.EntryStart || recs[3].Kind != api.EntryEnd {
		t.Fatalf("the swept run reads %+v", recs)
	}
}
