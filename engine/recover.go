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
// Adopting a run this node is running or adopting already does nothing: a
// cancellation, for one, adopts a parked run both where it is asked and where
// the run's timer is, which may be the same node.
func (n *Node) adopt(ctx context.Context, id string) error {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return api.ErrClosed
	}
	if _, ok := n.active[id]; ok || n.adopting[id] {
		n.mu.Unlock()
		return nil
	}
	n.adopting[id] = true
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.adopting, id)
		n.mu.Unlock()
	}()
	records, err := n.journal.Read(ctx, id)
	if err != nil {
		return err
	}
	if len(records) == 0 {
		return fmt.Errorf("%w %q: no journal", api.ErrUnknownRun, id)
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
	r := n.newRun(prog, *rec, j.Start.Input, j, j.Start.TraceParent)
	n.mu.Lock()
	if _, ok := n.active[id]; ok || n.closing {
		n.mu.Unlock()
		r.cancel(nil)
		return nil
	}
	n.active[id] = r
	n.runsWG.Add(1)
	n.mu.Unlock()
	if prev != api.StatusRunning || prevCoord != rec.Coordinator || prevHash != rec.Hash {
		n.runs.Put(ctx, r.snapshot(), prev, nil)
	}
	r.log.Info().Int("journaled_steps", len(j.Calls)).Msg("run adopted: replaying its journal")
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
		if err := n.adopt(ctx, rec.ID); err != nil {
			n.log.Error().Err(err).Str("run", rec.ID).Msg("recovery: adopt run")
		}
	}
}

// adoptOrphans takes over the unfinished runs a lost node coordinated. Every
// surviving node tries; a claim lets exactly one adopt each.
func (n *Node) adoptOrphans(dead string) {
	ctx, cancel := context.WithTimeout(n.baseCtx, 2*time.Minute)
	defer cancel()
	var runs []api.Run
	for { // the cluster may be electing stream leaders after the loss
		var err error
		if runs, err = n.runs.Running(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			n.log.Error().Err(err).Str("lost", dead).Msg("list runs of lost node")
			return
		}
		pause(ctx, 200*time.Millisecond)
	}
	for _, rec := range runs {
		if rec.Coordinator != dead {
			continue
		}
		if mine, err := n.cluster.Claim(ctx, rec.ID, dead); err != nil || !mine {
			continue // another node claimed it
		}
		n.log.Info().Str("run", rec.ID).Str("from", dead).Msg("adopting run of lost node")
		for { // this node holds the claim: nobody else will adopt the run
			err := n.adopt(ctx, rec.ID)
			if err == nil || errors.Is(err, api.ErrClosed) {
				break
			}
			if ctx.Err() != nil {
				n.log.Error().Err(err).Str("run", rec.ID).Msg("adopt run of lost node; it stays unfinished until a node restarts or ctl runs resume")
				break
			}
			n.log.Warn().Err(err).Str("run", rec.ID).Msg("adopt run of lost node; trying again")
			pause(ctx, time.Second)
		}
	}
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// readoptLater adopts run id again after a pause, when the journal may be
// writable again (a JetStream leader election ends within seconds).
func (n *Node) readoptLater(id string) {
	time.AfterFunc(2*time.Second, func() {
		ctx, cancel := context.WithTimeout(n.baseCtx, time.Minute)
		defer cancel()
		if err := n.adopt(ctx, id); err != nil && !errors.Is(err, api.ErrClosed) {
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
