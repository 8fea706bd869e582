package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/droverhq/drover/api"
)

// takeOverFor bounds how long a survivor tries to take over a lost node's
// runs: listing them, claiming them, adopting them.
const takeOverFor = 2 * time.Minute

// TakeOver takes over the unfinished runs that the lost node dead
// coordinated. Every survivor calls it; for each run, the claim (Claim) lets
// exactly one call adopt, which it then retries until it succeeds, returns
// api.ErrClosed or two minutes have passed. running lists the runs the index
// says are running; both ride out the leader elections that follow a loss.
func (m *Membership) TakeOver(ctx context.Context, dead string, running func(context.Context) ([]api.Run, error), adopt func(context.Context, string) error) {
	ctx, cancel := context.WithTimeout(ctx, takeOverFor)
	defer cancel()
	var runs []api.Run
	for {
		var err error
		if runs, err = running(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			m.log.Error().Err(err).Str("lost", dead).Msg("list runs of lost node")
			return
		}
		pause(ctx, 200*time.Millisecond)
	}
	for _, rec := range runs {
		if rec.Coordinator != dead {
			continue
		}
		mine, err := m.Claim(ctx, rec.ID, dead)
		for err != nil && ctx.Err() == nil { // the claims bucket may be electing a leader
			m.log.Warn().Err(err).Str("run", rec.ID).Msg("claim run of lost node; trying again")
			pause(ctx, time.Second)
			mine, err = m.Claim(ctx, rec.ID, dead)
		}
		if !mine {
			continue // another node claimed it
		}
		m.log.Info().Str("run", rec.ID).Str("from", dead).Msg("adopting run of lost node")
		for { // this node holds the claim: nobody else will adopt the run
			err := adopt(ctx, rec.ID)
			if err == nil || errors.Is(err, api.ErrClosed) {
				break
			}
			if ctx.Err() != nil {
				m.log.Error().Err(err).Str("run", rec.ID).Msg("adopt run of lost node; it stays unfinished until a node restarts or ctl runs resume")
				break
			}
			m.log.Warn().Err(err).Str("run", rec.ID).Msg("adopt run of lost node; trying again")
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
