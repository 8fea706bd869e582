package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

func fixtureRuns() []api.Run {
	return []api.Run{
		{ID: "01JPC8Z3D50000000000000003", Script: "checkout", Status: api.StatusRunning, Started: t0.Add(2 * time.Minute), Steps: 1, Attrs: map[string]string{"customer": "acme"}},
		{ID: "01JPC8Z3D50000000000000002", Script: "checkout", Status: api.StatusFailed, Started: t0.Add(time.Minute), Ended: at(time.Minute + 1234567*time.Microsecond), Steps: 2,
			Attrs: map[string]string{"env": "prod", "customer": "globex"}},
		{ID: "01JPC8Z3D50000000000000001", Script: "hello", Status: api.StatusCompleted, Started: t0, Ended: at(8893 * time.Microsecond), Steps: 3},
	}
}

func TestRunsTableGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := writeRunsTable(&buf, fixtureRuns(), time.UTC); err != nil {
		t.Fatal(err)
	}
	golden(t, "runs_ls.golden", buf.Bytes())
}

func TestRunDetailGolden(t *testing.T) {
	hash := "2c1ceef4fb6b11b42f5a806919d0a2b01d0e4b0a71089f8a18c064aaaaaaaaaa"
	tests := []struct {
		name string
		d    api.RunDetail
	}{
		{"completed", api.RunDetail{
			Run: api.Run{ID: "01JPC8Z3D50000000000000001", Script: "hello", Hash: hash, Status: api.StatusCompleted, Coordinator: "local",
				Started: t0, Ended: at(8893 * time.Microsecond), Attrs: map[string]string{"customer": "acme", "env": "test"},
				Result: json.RawMessage(`{"greeting":"hello acme","remembered":true}`)},
			Input: json.RawMessage(`{"customer":"acme"}`),
			Steps: []api.StepView{
				{ID: "1", Builtin: "time.now", Node: "local", Start: t0.Add(1125 * time.Microsecond), Duration: 4 * time.Microsecond, Attempts: 1, Outcome: "ok", Pos: "hello.star:4:19", Reason: "co-located: side value"},
				{ID: "2", Builtin: "http.get", Node: "n2", Start: t0.Add(1326 * time.Microsecond), Duration: 1234567 * time.Microsecond, Attempts: 3, Outcome: "ok", Pos: "hello.star:5:19", Reason: "drover: n2 (load 0.31) over n3 (0.70); n1 lacks github_api"},
				{ID: "3.1", Builtin: "kv.get", Node: "n1", Start: t0.Add(1236 * time.Millisecond), Duration: 60 * time.Microsecond, Attempts: 1, Outcome: "error", Pos: "hello.star:6:18",
					Error: &builtins.StepError{Code: "transport", Message: "kv.get: bucket\nunavailable"}},
			},
		}},
		{"failed", api.RunDetail{
			Run: api.Run{ID: "01JPC8Z3D50000000000000002", Script: "boom", Hash: hash, Status: api.StatusFailed, Coordinator: "n1",
				Started: t0, Ended: at(416 * time.Microsecond),
				Error: &api.RunError{Message: "fail: boom", Backtrace: "Traceback (most recent call last):\n  boom.star:6:10: in main\n  boom.star:3:9: in check\nError in fail: fail: boom"}},
			Input: json.RawMessage(`null`),
			Steps: []api.StepView{},
		}},
		{"running", api.RunDetail{
			Run:   api.Run{ID: "01JPC8Z3D50000000000000003", Script: "slow", Hash: hash, Status: api.StatusRunning, Coordinator: "n1", Started: t0},
			Input: json.RawMessage(`{"for":"30s"}`),
			Steps: []api.StepView{
				{ID: "1", Builtin: "sleep", Node: "n1", Start: t0.Add(2 * time.Millisecond), Outcome: "pending", Pos: "slow.star:2:10"},
			},
		}},
		{"parked", api.RunDetail{
			Run: api.Run{ID: "01JPC8Z3D50000000000000004", Script: "checkout", Hash: hash, Status: api.StatusRunning, Coordinator: "n1", Started: t0,
				WakeAt: at(time.Hour + 2*time.Millisecond), Expires: at(30 * 24 * time.Hour)},
			Input: json.RawMessage(`{"hold":"1h"}`),
			Steps: []api.StepView{
				{ID: "1", Builtin: "sleep", Node: "n1", Start: t0.Add(2 * time.Millisecond), Outcome: "pending", Pos: "checkout.star:9:10"},
			},
		}},
		{"placed_again", api.RunDetail{
			Run: api.Run{ID: "01JPC8Z3D50000000000000006", Script: "checkout", Hash: hash, Status: api.StatusCompleted, Coordinator: "n1",
				Started: t0, Ended: at(3 * time.Second), Result: json.RawMessage(`"ok"`)},
			Input: json.RawMessage(`{}`),
			Steps: []api.StepView{
				{ID: "1", Builtin: "http.get", Node: "n3", Start: t0.Add(2900 * time.Millisecond), Duration: 40 * time.Millisecond, Attempts: 1, Outcome: "ok", Pos: "checkout.star:4:19",
					Reason: "drover: n2 (load 0.10) over n3 (0.40)",
					Placements: []api.Placement{
						{Attempt: 1, Node: "n2", Reason: "drover: n2 (load 0.10) over n3 (0.40)", Time: t0.Add(time.Millisecond)},
						{Attempt: 2, Node: "n3", Reason: "drover: n3 (load 0.40); n2 lacks reports", Time: t0.Add(2900 * time.Millisecond), Why: "node n2 was lost before it answered"},
					}},
				{ID: "2", Builtin: "kv.put", Node: "n1", Start: t0.Add(2950 * time.Millisecond), Duration: 90 * time.Microsecond, Attempts: 1, Outcome: "ok", Pos: "checkout.star:5:11", Reason: "co-located"},
			},
		}},
		{"blocked", api.RunDetail{
			Run: api.Run{ID: "01JPC8Z3D50000000000000005", Script: "checkout", Hash: hash, Status: api.StatusBlocked, Coordinator: "n2", Started: t0, Pinned: true,
				Error: &api.RunError{Code: "non_determinism", Message: "non-determinism at step 2: the script now makes a different call than the journal holds\n" +
					"  journaled: kv.get({\"key\":\"price/apple\"}) at checkout.star:7:18\n" +
					"  new:       kv.get({\"key\":\"prices/apple\"}) at checkout.star:7:18"}},
			Input: json.RawMessage(`{}`),
			Steps: []api.StepView{
				{ID: "1", Builtin: "uuid", Node: "n1", Start: t0.Add(time.Millisecond), Duration: 3 * time.Microsecond, Attempts: 1, Outcome: "ok", Pos: "checkout.star:5:17"},
				{ID: "2", Builtin: "kv.get", Node: "n1", Start: t0.Add(2 * time.Millisecond), Duration: 90 * time.Microsecond, Attempts: 1, Outcome: "ok", Pos: "checkout.star:7:18"},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeRunDetail(&buf, &tt.d, time.UTC); err != nil {
				t.Fatal(err)
			}
			golden(t, "runs_show_"+tt.name+".golden", buf.Bytes())
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{850, "850ns"},
		{12_345, "12µs"},
		{1_234_567, "1.235ms"},
		{123_456_789, "123.457ms"},
		{1_234_567_890, "1.235s"},
		{125_600 * time.Millisecond, "2m6s"},
		{3*time.Hour + 2*time.Second, "3h0m2s"},
		{-1500 * time.Microsecond, "-1.5ms"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.d); got != tt.want {
			t.Errorf("formatDuration(%d) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got := formatOffset(1234 * time.Microsecond); got != "+1.234ms" {
		t.Errorf("formatOffset = %q", got)
	}
}

func TestDataDir(t *testing.T) {
	tests := []struct {
		name, flag string
		env        map[string]string
		want       string
		wantErr    bool
	}{
		{"flag wins", "/d/flag", map[string]string{"DROVER_DATA": "/d/env", "XDG_DATA_HOME": "/xdg", "HOME": "/home/u"}, "/d/flag", false},
		{"DROVER_DATA", "", map[string]string{"DROVER_DATA": "/d/env", "XDG_DATA_HOME": "/xdg", "HOME": "/home/u"}, "/d/env", false},
		{"XDG_DATA_HOME", "", map[string]string{"XDG_DATA_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/drover", false},
		{"relative XDG_DATA_HOME is ignored", "", map[string]string{"XDG_DATA_HOME": "xdg", "HOME": "/home/u"}, "/home/u/.local/share/drover", false},
		{"home", "", map[string]string{"HOME": "/home/u"}, "/home/u/.local/share/drover", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dataDir(tt.flag, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("dataDir = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestReportEndExitCodes(t *testing.T) {
	tests := []struct {
		name string
		run  api.Run
		want int
		err  string
	}{
		{"completed", api.Run{ID: "R", Status: api.StatusCompleted}, ExitOK, ""},
		{"failed", api.Run{ID: "R", Status: api.StatusFailed, Error: &api.RunError{Message: "boom", Backtrace: "Traceback\n  t.star:2:9: in main\n"}}, ExitFailure,
			"run R failed: boom\nTraceback\n  t.star:2:9: in main\n"},
		{"cancelled", api.Run{ID: "R", Status: api.StatusCancelled}, ExitCancelled, "run R cancelled\n"},
		{"cancelled with reason", api.Run{ID: "R", Status: api.StatusCancelled, Error: &api.RunError{Message: "by ctl cancel"}}, ExitCancelled, "run R cancelled: by ctl cancel\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			a := &app{stderr: &stderr}
			err := a.reportEnd(&tt.run)
			code := ExitOK
			var ee *exitError
			if errors.As(err, &ee) {
				code = ee.code
			} else if err != nil {
				t.Fatalf("err = %v, want an exit code", err)
			}
			if code != tt.want || stderr.String() != tt.err {
				t.Fatalf("code %d stderr %q, want %d %q", code, stderr.String(), tt.want, tt.err)
			}
		})
	}
}
