package journal

import (
	"context"
	"sync"

	"github.com/droverhq/drover/api"
)

// Unacked is a run's entries appended without waiting and not yet known to
// be acknowledged: a coordinator appends a step's call and goes on (the
// step executes meanwhile), and waits for the acknowledgement before it
// relies on the call being journaled. Safe for concurrent use.
type Unacked struct {
	s   *Store
	run string

	mu      sync.Mutex
	pending []Pending
}

// Unacked returns an empty set of run's unacknowledged appends.
func (s *Store) Unacked(run string) *Unacked { return &Unacked{s: s, run: run} }

// Append starts appending an entry of the run; Wait waits for it.
func (u *Unacked) Append(kind api.EntryKind, key string, entry any) error {
	p, err := u.s.AppendAsync(u.run, kind, key, entry)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.pending = append(u.pending, p)
	u.mu.Unlock()
	return nil
}

// Wait waits until every entry appended so far is acknowledged, and
// returns the first error.
func (u *Unacked) Wait(ctx context.Context) error {
	u.mu.Lock()
	pending := u.pending
	u.pending = nil
	u.mu.Unlock()
	for _, p := range pending {
		if err := p.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}
