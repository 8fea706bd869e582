package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
)

// Entries over the large-value size are stored once in the values object
// store and journaled by reference; every way of reading the journal gives
// them back whole, sealed or not, and write-once holds for them.
func TestLargeValues(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	s := NewStore(b)
	s.large = 1 << 10
	ctx := context.Background()
	run := ulid.Make().String()
	big := func(c string) json.RawMessage { v, _ := json.Marshal(strings.Repeat(c, 4<<10)); return v }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Append(ctx, run, api.EntryStart, "", api.StartEntry{Run: run, Script: "t", Input: big("i")}))
	p, err := s.AppendAsync(run, api.EntryCall, "1", api.CallEntry{Step: "1", Builtin: "t.echo", Args: big("a")})
	must(err)
	must(p.Wait(ctx))
	first, err := s.AppendResult(ctx, run, api.ResultEntry{Step: "1", Value: big("r"), Node: "n1"})
	must(err)
	// A second writer, with another large value, gets the first.
	second, err := s.AppendResult(ctx, run, api.ResultEntry{Step: "1", Value: big("s"), Node: "n2"})
	if err != nil || second.Node != "n1" || !bytes.Equal(second.Value, first.Value) {
		t.Fatalf("second writer: %v %s, want the first result", err, second.Node)
	}
	// The same value again is the same object; the journal holds references.
	must(s.Append(ctx, run, api.EntryResult, "2", api.ResultEntry{Step: "2", Value: big("r"), Node: "n1"}))
	must(s.Append(ctx, run, api.EntryEnd, "", api.EndEntry{Status: api.StatusCompleted, Result: big("e"), Steps: 2}))
	for _, key := range []string{"start", "call.1", "result.1", "end"} {
		m, err := b.Entry(ctx, bus.JournalRunPrefix(run)+key)
		if err != nil || len(m.Data) > 200 || !bytes.HasPrefix(m.Data, []byte(refPrefix)) {
			t.Fatalf("stored %s entry: %d bytes %.80s %v, want a reference", key, len(m.Data), m.Data, err)
		}
	}
	check := func(what string) {
		t.Helper()
		recs := mustRead(t, s, run)
		if len(recs) != 5 {
			t.Fatalf("%s: %d entries", what, len(recs))
		}
		var res api.ResultEntry
		must(json.Unmarshal(recs[2].Data, &res))
		if !bytes.Equal(res.Value, big("r")) {
			t.Fatalf("%s: result read back is %d bytes", what, len(res.Value))
		}
		got, err := s.Result(ctx, run, "2")
		if err != nil || !bytes.Equal(got.Value, big("r")) {
			t.Fatalf("%s: Result: %v", what, err)
		}
		var end api.EndEntry
		if err := s.Get(ctx, run, api.EntryEnd, "", &end); err != nil || !bytes.Equal(end.Result, big("e")) {
			t.Fatalf("%s: end entry: %v", what, err)
		}
		var followed []Record
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		must(s.Follow(fctx, run, func(r Record) bool { followed = append(followed, r); return r.Kind != api.EntryEnd }))
		sameRecords(t, what+": followed", followed, recs)
	}
	check("live")
	if sealed, err := s.Seal(ctx, run); err != nil || !sealed {
		t.Fatalf("seal: %v %v", sealed, err)
	}
	check("sealed")

	// A value whose content does not match its name, and one that is gone.
	data := []byte(`"not what the name says"`)
	must(b.PutValue(ctx, valueName([]byte(`"x"`)), data))
	if _, err := s.Value(ctx, valueName([]byte(`"x"`))); err == nil || !strings.Contains(err.Error(), "is corrupt") {
		t.Fatalf("corrupt value: %v", err)
	}
	gone := ulid.Make().String()
	stub := []byte(refPrefix + valueName([]byte("gone")) + `","size":4}`)
	if _, _, err := b.AppendOnce(ctx, bus.JournalSubject(gone, "start", ""), gone+"/start", nil, stub); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx, gone); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "large value sha256-") {
		t.Fatalf("reading a journal whose value is gone: %v, want ErrNotFound naming the value", err)
	}
}
