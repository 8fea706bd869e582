package placement

import (
	"context"
	"maps"
	"time"
)

// Queued says that no node can take a step yet.
type Queued struct {
	// Resource is what the step waits for: a custom resource or "memory".
	Resource string
	// Retry is when to look again (a new reading may allow it sooner).
	Retry time.Duration
	// Detail says what placement saw, for the queue's display.
	Detail string
}

// Place implements Policy: it waits, bounded by MaxWait and ctx, until a node
// can take the step.
func (a *Adaptive) Place(ctx context.Context, req Request) (Decision, error) {
	since := a.opts.Now()
	queuedOn := ""
	defer func() {
		if queuedOn != "" {
			a.requeue(queuedOn, "")
		}
	}()
	for {
		var changed <-chan struct{}
		if a.changed != nil {
			changed = a.changed()
		}
		d, q, err := a.TryPlace(req, since)
		if q == nil {
			if err == nil && queuedOn != "" {
				d.Reason += " for " + queuedOn
			}
			return d, err
		}
		if q.Resource != queuedOn {
			a.requeue(queuedOn, q.Resource)
			queuedOn = q.Resource
		}
		t := time.NewTimer(q.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return Decision{}, &NoNodeError{Builtin: req.Builtin, Resource: q.Resource, Detail: q.Detail,
				Waited: a.opts.Now().Sub(since), Err: context.Cause(ctx)}
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

func (a *Adaptive) requeue(from, to string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if from != "" {
		if a.queue[from]--; a.queue[from] <= 0 {
			delete(a.queue, from)
		}
	}
	if to != "" {
		a.queue[to]++
	}
}

// Waiting returns the number of steps waiting in Place for a node, by the
// resource they wait for: the visible queue.
func (a *Adaptive) Waiting() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.queue)
}

// queued builds the answer when no node can take the step.
func (a *Adaptive) queued(req Request, nodes []NodeState, now, since time.Time) (Decision, *Queued, error) {
	s := &a.s
	// The resource to wait for is the one that frees soonest.
	var best *inelig
	for k := range s.inelig {
		in := &s.inelig[k]
		if in.wait < 0 {
			continue
		}
		if best == nil || a.retryOf(in.wait) < a.retryOf(best.wait) {
			best = in
		}
	}
	waited := max(now.Sub(since), 0)
	if best == nil {
		in := s.inelig[0]
		return Decision{}, nil, &NoNodeError{Builtin: req.Builtin, Resource: in.resource, Waited: waited, Detail: a.detail(in.resource, nodes)}
	}
	if waited >= a.opts.MaxWait {
		return Decision{}, nil, &NoNodeError{Builtin: req.Builtin, Resource: best.resource, Waited: waited,
			Detail: a.detail(best.resource, nodes) + ", for the max wait of " + a.opts.MaxWait.String()}
	}
	retry := min(a.retryOf(best.wait), a.opts.MaxWait-waited)
	return Decision{}, &Queued{Resource: best.resource, Retry: max(retry, time.Microsecond), Detail: a.detail(best.resource, nodes)}, nil
}

func (a *Adaptive) retryOf(wait time.Duration) time.Duration {
	if wait <= 0 {
		return a.opts.Retry
	}
	return wait
}
