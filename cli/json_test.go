package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
)

// TestJSONOutput runs every command that prints an API object with --json
// against a fake node: the object goes to stdout as indented JSON (compared
// with testdata/json/NAME.golden), and the exit code is the one the command
// has without --json.
func TestJSONOutput(t *testing.T) {
	const id = "01JPC8Z3D50000000000000001"
	hash := "2c1ceef4fb6b11b42f5a806919d0a2b01d0e4b0a71089f8a18c064aaaaaaaaaa"
	started := api.Run{ID: id, Script: "echo", Hash: hash, Status: api.StatusRunning, Coordinator: "n1", Started: t0,
		Attrs: map[string]string{"customer": "acme"}, Expires: at(720 * time.Hour)}
	completed := started
	completed.Status, completed.Ended, completed.Steps = api.StatusCompleted, at(8893*time.Microsecond), 2
	completed.Result = json.RawMessage(`{"note":"<fragile> & dry"}`)
	failed := completed
	failed.Status, failed.Result = api.StatusFailed, nil
	failed.Error = &api.RunError{Message: "fail: boom", Backtrace: "Traceback (most recent call last):\n  echo.star:3:9: in main\nError in fail: fail: boom"}
	cancelled := started
	cancelled.Status, cancelled.Ended = api.StatusCancelled, at(time.Second)
	cancelled.Error = &api.RunError{Code: "cancelled", Message: "cancelled by alice@box: customer asked"}
	pinned := completed
	pinned.Pinned, pinned.Expires = true, nil
	rec := func(r api.Run) *api.Run { return &r }

	tests := []struct {
		name     string
		args     []string
		embedded bool
		node     fakeNode
		code     int
		stderr   string
	}{
		{name: "run_completed", args: []string{"run", "testdata/echo.star", "--json"}, embedded: true,
			node: fakeNode{start: func(api.StartRequest) (*api.Run, error) { return rec(started), nil },
				wait: func(context.Context, string) (*api.Run, error) { return rec(completed), nil }},
			code: ExitOK, stderr: "run " + id + "\n"},
		{name: "run_failed", args: []string{"run", "testdata/echo.star", "--json"}, embedded: true,
			node: fakeNode{start: func(api.StartRequest) (*api.Run, error) { return rec(started), nil },
				wait: func(context.Context, string) (*api.Run, error) { return rec(failed), nil }},
			code: ExitFailure, stderr: "run " + id + "\n"},
		{name: "run_detach", args: []string{"run", "testdata/echo.star", "--detach", "--json", "--server", "http://node"},
			node: fakeNode{start: func(api.StartRequest) (*api.Run, error) { return rec(started), nil }},
			code: ExitOK},
		{name: "cancel", args: []string{"cancel", id, "--json"},
			node: fakeNode{cancel: func(string, string, string) (*api.Run, error) { return rec(started), nil },
				wait: func(context.Context, string) (*api.Run, error) { return rec(cancelled), nil }},
			code: ExitOK},
		{name: "cancel_too_late", args: []string{"cancel", id, "--json"},
			node: fakeNode{cancel: func(string, string, string) (*api.Run, error) { return rec(started), nil },
				wait: func(context.Context, string) (*api.Run, error) { return rec(completed), nil }},
			code: ExitFailure, stderr: "ctl cancel: run " + id + " completed before the cancellation took effect\n"},
		{name: "runs_wait_cancelled", args: []string{"runs", "wait", id, "--json"},
			node: fakeNode{wait: func(context.Context, string) (*api.Run, error) { return rec(cancelled), nil }},
			code: ExitCancelled},
		{name: "runs_pin", args: []string{"runs", "pin", id, "--json"},
			node: fakeNode{pin: func(string) (*api.Run, error) { return rec(pinned), nil }},
			code: ExitOK},
		{name: "runs_resume_server", args: []string{"runs", "resume", id, "--json"},
			node: fakeNode{resume: func(string, *api.Script) (*api.Run, error) { return rec(started), nil }},
			code: ExitOK},
		{name: "runs_resume_embedded", args: []string{"runs", "resume", id, "--json"}, embedded: true,
			node: fakeNode{resume: func(string, *api.Script) (*api.Run, error) { return rec(started), nil },
				wait: func(context.Context, string) (*api.Run, error) { return rec(failed), nil }},
			code: ExitFailure, stderr: "run " + id + " resumed on version 2c1ceef4fb6b: running\n"},
		{name: "rollback", args: []string{"rollback", "greet", "--json"},
			node: fakeNode{rollback: func(name string, version int) (*api.Deployment, error) {
				return &api.Deployment{Name: name, Version: 3, Hash: hash, Main: "main.star", Files: []string{"lib/fmt.star", "main.star"},
					By: "carol@box", At: t0, Note: "rollback to version 1"}, nil
			}},
			code: ExitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.node.t = t
			r := ctlOn(t, &tt.node, tt.embedded, tt.args...)
			if r.code != tt.code || r.stderr != tt.stderr {
				t.Fatalf("want exit %d and stderr %q\n%v", tt.code, tt.stderr, r)
			}
			if !json.Valid([]byte(r.stdout)) {
				t.Fatalf("stdout is not JSON:\n%v", r)
			}
			golden(t, "json/"+tt.name+".golden", []byte(r.stdout))
		})
	}
}

// TestJSONErrors checks that a command that gets no object prints nothing on
// stdout with --json, and its error on stderr as without it.
func TestJSONErrors(t *testing.T) {
	const id = "01ZZZZZZZZZZZZZZZZZZZZZZZZ"
	unknown := func(string) (*api.Run, error) {
		return nil, fmt.Errorf("%w %q", api.ErrUnknownRun, id)
	}
	tests := []struct {
		name string
		args []string
		node fakeNode
	}{
		{"pin", []string{"runs", "pin", id, "--json"}, fakeNode{pin: unknown}},
		{"cancel ended run", []string{"cancel", id, "--json"}, fakeNode{cancel: func(string, string, string) (*api.Run, error) {
			return &api.Run{ID: id, Status: api.StatusCompleted}, fmt.Errorf("%w: run %s has already completed", api.ErrBadInput, id)
		}}},
		{"resume", []string{"runs", "resume", id, "--json"}, fakeNode{resume: func(string, *api.Script) (*api.Run, error) { return unknown(id) }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.node.t = t
			r := ctlOn(t, &tt.node, false, tt.args...)
			if r.code != ExitFailure || r.stdout != "" || r.stderr == "" {
				t.Fatalf("%v", r)
			}
		})
	}
}
