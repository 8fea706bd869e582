package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/journal"
)

// adopt continues an unfinished run on this node: its journal is replayed (no
// completed step runs again) and it goes on live where the journal ends.
// Adopting a run this node is running does nothing; a call while the same
// run is being adopted (a cancellation adopts a parked run both where it is
// asked and where the run's timer is, which may be the same node) waits for
// that adoption and returns its outcome.
func (n *Node) adopt(ctx context.Context, id string) error {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return api.ErrClosed
	}
	if _, ok := n.active[id]; ok {
		n.mu.Unlock()
		return nil
	}
	if a := n.adopting[id]; a != nil {
		n.mu.Unlock()
		select {
		case <-a.done:
			return a.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a := &adoption{done: make(chan struct{})}
	n.adopting[id] = a
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.adopting, id)
		n.mu.Unlock()
		close(a.done)
	}()
	a.err = n.adoptNow(ctx, id)
	return a.err
}

// errNoJournal says that a run in the index has no journal.
var errNoJournal = errors.New("no journal")

// adoption is an adoption in progress; err is set before done closes.
type adoption struct {
	done chan struct{}
	err  error
}

// adoptNow is adopt's work: read the journal, compile the run's version,
// and start the run on this node.
func (n *Node) adoptNow(ctx context.Context, id string) error {
	records, err := n.journal.Read(ctx, id)
	if err != nil {
		return err
	}
	if len(records) == 0 {
		return fmt.Errorf("%w %q: %w", api.ErrUnknownRun, id, errNoJournal)
	}
	j, err := journal.Parse(journal.Entries(records))
	if err != nil {
		return fmt.Errorf("engine: run %s: %w", id, err)
	}
	rec, err := n.runs.Record(ctx, id)
	if err != nil {
		return err
	}
	if j.End != nil {
		return nil // ended; nothing to adopt
	}
	s, err := n.scripts.Load(ctx, j.Hash())
	if err != nil {
		return err
	}
	prog, err := n.compiler.Compile(*s)
	if err != nil {
		return fmt.Errorf("engine: run %s: its script version no longer compiles: %w", id, err)
	}
	prev, prevHash, prevCoord := rec.Status, rec.Hash, rec.Coordinator
	rec.Status, rec.Error, rec.WakeAt, rec.Steps = api.StatusRunning, nil, nil, 0
	rec.Coordinator, rec.Hash = n.opts.Name, prog.Hash
	// Journaled tags are not replayed: their attributes go into the record
	// here, should the coordinator have stopped before indexing them.
	tagged := false
	for _, t := range j.Tags {
		for k, v := range t.Attrs {
			if rec.Attrs == nil {
				rec.Attrs = map[string]string{}
			}
			if rec.Attrs[k] != v {
				rec.Attrs[k], tagged = v, true
			}
		}
	}
	r := n.newRun(prog, *rec, j.Start.Input, j, j.Start.TraceParent)
	n.mu.Lock()
	if _, ok := n.active[id]; ok || n.closing {
		n.mu.Unlock()
		r.cancel(nil)
		return nil
	}
	n.active[id] = r
	n.runsWG.Add(1)
	active := len(n.active)
	n.mu.Unlock()
	n.metrics.RunsInFlight(active)
	// A cancellation journaled after the journal was read, and broadcast
	// before the run was active here, is seen now.
	var ce api.CancelEntry
	if j.Cancel == nil && n.journal.Get(ctx, id, api.EntryCancel, "", &ce) == nil {
		j.Cancel = &ce
	}
	if prev != api.StatusRunning || prevCoord != rec.Coordinator || prevHash != rec.Hash || tagged {
		n.runs.Put(ctx, r.snapshot(), prev, nil)
	}
	r.logger().Info().Int("journaled_steps", len(j.Calls)).Msg("run adopted: replaying its journal")
	if prevCoord != n.opts.Name || prev == api.StatusBlocked {
		go n.cluster.RecordAdoption(n.baseCtx, id, prevCoord, "was "+prev)
	}
	go r.execute()
	return nil
}

// recoverRuns adopts the unfinished runs this node coordinated.
func (n *Node) recoverRuns(ctx context.Context) {
	runs, err := n.runs.List(ctx, api.ListFilter{Status: api.StatusRunning, Limit: 1 << 30})
	if err != nil {
		n.log.Error().Err(err).Msg("recovery: list running runs")
		return
	}
	for _, rec := range runs {
		if rec.Coordinator != n.opts.Name {
			continue
		}
		if err := n.adopt(ctx, rec.ID); errors.Is(err, errNoJournal) {
			n.runs.NotStarted(ctx, rec, fmt.Errorf("node %s stopped first", rec.Coordinator)) // indexed, not journaled
		} else if err != nil {
			n.log.Error().Err(err).Str("run", rec.ID).Msg("recovery: adopt run")
		}
	}
}

// readoptLater adopts run id again after a pause, when the journal may be
// writable again (a JetStream leader election ends within seconds).
func (n *Node) readoptLater(id string) {
	time.AfterFunc(2*time.Second, func() {
		ctx, cancel := context.WithTimeout(n.baseCtx, time.Minute)
		defer cancel()
		if err := n.adopt(ctx, id); err != nil && !errors.Is(err, api.ErrClosed) && !errors.Is(err, api.ErrUnknownRun) {
			n.log.Error().Err(err).Str("run", id).Msg("re-adopt interrupted run")
			n.readoptLater(id)
		}
	})
}

// Resume implements api.API: it adopts an unfinished run again: a blocked
// run after a fix, or any unfinished run moved to another script version.
// With script non-nil the run continues on that version (journaled as a
// version entry): its journal is replayed against it, so the new version
// must make the same calls for the steps already taken (patched() lets it
// branch for new runs only).
func (n *Node) Resume(ctx context.Context, id string, s *api.Script, by string) (*api.Run, error) {
	rec, err := n.runs.Record(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.Done() {
		return rec, fmt.Errorf("%w: run %s has already %s", api.ErrBadInput, id, rec.Status)
	}
	if s != nil {
		prog, err := n.compiler.Compile(*s)
		if err != nil {
			return nil, err
		}
		if err := n.scripts.Save(ctx, prog.Script, prog.Hash); err != nil {
			return nil, err
		}
		n.mu.Lock()
		r := n.active[id]
		n.mu.Unlock()
		if r != nil {
			return nil, fmt.Errorf("%w: run %s is running on this node; move it to another version while it is parked, blocked or stopped", api.ErrBadInput, id)
		}
		records, err := n.journal.Read(ctx, id)
		if err != nil {
			return nil, err
		}
		seq := 1
		for _, e := range records {
			if e.Kind == api.EntryVersion {
				seq++
			}
		}
		entry := api.VersionEntry{Hash: prog.Hash, Script: s.Name, By: by, Time: time.Now().UTC()}
		if err := n.journal.Append(ctx, id, api.EntryVersion, strconv.Itoa(seq), entry); err != nil {
			return nil, err
		}
		n.unschedule(id)
	}
	if err := n.adopt(ctx, id); err != nil {
		return nil, err
	}
	return n.runs.Record(ctx, id)
}
