package engine

import (
	"errors"

	"github.com/droverhq/drover/dispatch"
)

// Causes of a run's context ending, and of a step's dispatch failing. None
// reaches the API: a run interrupted by one of them is left unfinished in
// its journal and adopted again, or ends with a code of its own.
var (
	// errJournal marks a failure to write the journal (after the bus's own
	// retries): the run is interrupted and adopted again, never failed for it.
	errJournal = errors.New("engine: journal unavailable")
	// errShutdown is the cancellation cause of runs interrupted by Close: they
	// are left unfinished in the journal, for recovery, instead of being failed.
	errShutdown = errors.New("engine: node shut down")
	// errCancelled is the cancellation cause of a run cancelled by a user.
	errCancelled = errors.New("engine: run cancelled")
	// errNodeLost reports that the node executing a dispatched step stopped
	// heartbeating before it answered.
	errNodeLost = dispatch.ErrNodeLost
	// errSuspended unwinds the script when a durable timer parks the run.
	errSuspended = errors.New("engine: run parked until its timer fires")
)
