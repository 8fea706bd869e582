package cli

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/replay"
)

func TestUnescapeHTML(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"none", `{"a":"b"}`, `{"a":"b"}`},
		{"html escapes", `{"u":"x?a=1\u0026b=\u003c2\u003e"}`, `{"u":"x?a=1&b=<2>"}`},
		{"upper-case hex", `"\u003C\u0026"`, `"<&"`},
		{"escaped backslash before u0026", `"\\u0026"`, `"\\u0026"`},
		{"other escapes kept", `"\u00e9\n\"\u2028"`, `"\u00e9\n\"\u2028"`},
		{"short escape at the end", `"\u00`, `"\u00`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(unescapeHTML([]byte(tt.in))); got != tt.want {
				t.Fatalf("unescapeHTML(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestWriteExportRoundTrip(t *testing.T) {
	s := api.Script{Name: "t", Main: "t.star", Files: map[string]string{"t.star": "def main(input):\n    return input\n"}}
	exp := &api.Export{
		Format: api.ExportFormat,
		Run:    api.Run{ID: "01JPC8Z3D50000000000000001", Script: "t", Hash: s.Hash(), Status: api.StatusCompleted, Started: t0, Result: json.RawMessage(`"a&b"`)},
		Script: s,
		Journal: []api.JournalEntry{
			{Kind: "start", Data: json.RawMessage(`{"run":"01JPC8Z3D50000000000000001","input":"a&b"}`)},
			{Kind: "end", Data: json.RawMessage(`{"status":"completed","result":"a&b"}`)},
		},
	}
	var buf bytes.Buffer
	if err := writeExport(&buf, exp); err != nil {
		t.Fatal(err)
	}
	golden(t, "export.golden", buf.Bytes())
	got, err := journal.ParseExport(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got.Journal {
		if !bytes.Equal(e.Data, exp.Journal[i].Data) {
			t.Errorf("entry %d data = %s, want the journal's own bytes %s", i, e.Data, exp.Journal[i].Data)
		}
	}
	rep, err := replay.Replay(t.Context(), got, replay.Options{})
	if err != nil || !rep.Matches || replayExit(rep) != ExitOK {
		t.Fatalf("replay: %v %+v", err, rep)
	}
}

func TestReplayExit(t *testing.T) {
	fail := &api.RunError{Message: "boom"}
	tests := []struct {
		name string
		rep  replay.Report
		want int
	}{
		{"same result", replay.Report{Matches: true}, ExitOK},
		{"same error", replay.Report{Matches: true, Error: fail}, ExitFailure},
		{"other outcome", replay.Report{Error: fail}, ExitDiverged},
		{"partial", replay.Report{Partial: true}, ExitOK},
	}
	for _, tt := range tests {
		if got := replayExit(&tt.rep); got != tt.want {
			t.Errorf("%s: exit %d, want %d", tt.name, got, tt.want)
		}
	}
}
