package journal

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
)

// fuzzSeeds are a run's entries and its export as valid JSON, for the fuzzers
// to start from.
func fuzzSeeds(f *testing.F) (entries, export []byte) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	script := api.Script{Name: "checkout", Main: "main.star", Files: map[string]string{"main.star": "def main(input):\n    return time.now()\n"}}
	entry := func(kind api.EntryKind, key string, v any) api.JournalEntry {
		data, err := api.EncodeJSON(v)
		if err != nil {
			f.Fatal(err)
		}
		return api.JournalEntry{Kind: kind, Key: key, Data: data}
	}
	journal := []api.JournalEntry{
		entry(api.EntryStart, "", api.StartEntry{Run: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Script: "checkout", Hash: script.Hash(), Input: json.RawMessage(`{"customer":"acme"}`), Coordinator: "n1", Time: at}),
		entry(api.EntryCall, "1", api.CallEntry{Step: "1", Builtin: "time.now", Pos: "main.star:2:20", Node: "n1", Time: at}),
		entry(api.EntryResult, "1", api.ResultEntry{Step: "1", Value: json.RawMessage(`"2026-12-02T10:00:00Z"`), Node: "n1", Attempts: 1, Start: at}),
		entry(api.EntryEnd, "", api.EndEntry{Status: api.StatusCompleted, Result: json.RawMessage(`"2026-12-02T10:00:00Z"`), Time: at}),
	}
	entries, err := json.Marshal(journal)
	if err != nil {
		f.Fatal(err)
	}
	export, err = json.Marshal(api.Export{Format: api.ExportFormat, Run: api.Run{ID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Script: "checkout", Hash: script.Hash()}, Script: script, Journal: journal})
	if err != nil {
		f.Fatal(err)
	}
	return entries, export
}

// FuzzParse: no journal, however corrupt, makes Parse panic; each is read or
// refused with an error.
func FuzzParse(f *testing.F) {
	entries, _ := fuzzSeeds(f)
	f.Add(entries)
	for _, s := range []string{`[]`, `[{"kind":"start","data":{}}]`, `[{"kind":"call","key":"1","data":null}]`, `[{"kind":"bogus","data":1}]`,
		`[{"kind":"start","data":{"run":"x"}},{"kind":"result","key":"1","data":{"step":"1","value":[}}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var journal []api.JournalEntry
		if json.Unmarshal(data, &journal) != nil {
			return
		}
		Parse(journal)
	})
}

// FuzzParseExport: a run file is read or refused with api.ErrBadInput, never
// a panic; one it reads writes back (encoding/json) as a file it reads the
// same.
func FuzzParseExport(f *testing.F) {
	_, export := fuzzSeeds(f)
	f.Add(export)
	for _, s := range []string{`{}`, `{"format":"x"}`, `{"format":"` + api.ExportFormat + `"}`, `{"format":"` + api.ExportFormat + `","journal":[{"kind":"start","data":{}}]}`, `[`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseExport(data)
		if err != nil {
			return
		}
		once, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("an export read from %q does not encode: %v", data, err)
		}
		again, err := ParseExport(once)
		if err != nil {
			t.Fatalf("an export read from %q, written back as %q, is refused: %v", data, once, err)
		}
		twice, _ := json.Marshal(again)
		if !bytes.Equal(once, twice) {
			t.Fatalf("an export read from %q: written %q, then %q", data, once, twice)
		}
	})
}
