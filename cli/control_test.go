package cli

import (
	"context"
	"fmt"
	"testing"

	"github.com/droverhq/drover/engine"
)

// TestCancelInterruptedRunEndedByCancel is the race behind a flaky
// TestCancelEmbedded/interrupted: engine.Node.Cancel adopts a run that nobody
// coordinates, and that adoption ends it as cancelled, possibly before Cancel
// returns the record it read first (still running). ctl must take the run as
// cancelled, not try to end it again (a second adoption, through Resume, finds
// it "already cancelled" and used to fail the command).
func TestCancelInterruptedRunEndedByCancel(t *testing.T) {
	const id = "01JPC8Z3D50000000000000001"
	ended := &engine.Run{ID: id, Status: engine.StatusCancelled, Error: &engine.RunError{Message: "cancelled by u@h: stuck"}}
	node := &fakeNode{t: t,
		cancel: func(string, string, string) (*engine.Run, error) {
			// The record read before the cancellation: an interrupted run.
			return &engine.Run{ID: id, Status: engine.StatusRunning}, nil
		},
		resume: func(string, *engine.Script) (*engine.Run, error) {
			return ended, fmt.Errorf("%w: run %s has already cancelled", engine.ErrBadInput, id)
		},
		wait: func(context.Context, string) (*engine.Run, error) { return ended, nil },
	}
	r := ctlOn(t, node, true, "cancel", id, "--reason", "stuck")
	if r.code != ExitOK || r.stdout != "run "+id+" cancelled\n" || r.stderr != "" {
		t.Fatalf("%v", r)
	}
}
