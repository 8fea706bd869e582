package cli

import (
	"context"
	"fmt"
	"testing"

	"github.com/droverhq/drover/api"
)

// TestCancelInterruptedRunEndedByCancel is the race behind a flaky
// TestCancelEmbedded/interrupted: engine.Node.Cancel adopts a run that nobody
// coordinates, and that adoption ends it as cancelled, possibly before Cancel
// returns the record it read first (still running). ctl must take the run as
// cancelled, not try to end it again (a second adoption, through Resume, finds
// it "already cancelled" and used to fail the command).
func TestCancelInterruptedRunEndedByCancel(t *testing.T) {
	const id = "01JPC8Z3D50000000000000001"
	ended := &api.Run{ID: id, Status: api.StatusCancelled, Error: &api.RunError{Message: "cancelled by u@h: stuck"}}
	node := &fakeNode{t: t,
		cancel: func(string, string, string) (*api.Run, error) {
			// The record read before the cancellation: an interrupted run.
			return &api.Run{ID: id, Status: api.StatusRunning}, nil
		},
		resume: func(string, *api.Script) (*api.Run, error) {
			return ended, fmt.Errorf("%w: run %s has already cancelled", api.ErrBadInput, id)
		},
		wait: func(context.Context, string) (*api.Run, error) { return ended, nil },
	}
	r := ctlOn(t, node, true, "cancel", id, "--reason", "stuck")
	if r.code != ExitOK || r.stdout != "run "+id+" cancelled\n" || r.stderr != "" {
		t.Fatalf("%v", r)
	}
}
