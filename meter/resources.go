package meter

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ResourcesOptions configures a Resources set. The zero value works: the real
// clock, every resource enforced on this node alone.
type ResourcesOptions struct {
	// Now is the clock (default time.Now). A simulator passes virtual time.
	Now func() time.Time
	// Shared returns the limiter of a cluster- or group-scoped resource,
	// shared with the other nodes of its scope; the engine backs it with the
	// cluster's store. Nil, or a nil result, enforces the resource on this node
	// alone, which is exact only while one node declares it.
	Shared func(spec ResourceSpec) Limiter
	// Poll is how often Wait looks again when a limiter cannot say when units
	// free up (a shared pool released on another node). Default 20ms.
	Poll time.Duration
}

// Resources is the set of a node's custom resources, built from their
// declarations. The worker takes a step's units before executing it (Take or
// Wait) and releases pool units when it ends (Release). It is safe for
// concurrent use.
type Resources struct {
	now    func() time.Time
	poll   time.Duration
	list   []*resource // sorted by name
	byName map[string]*resource

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every Release
}

type resource struct {
	mu      sync.Mutex // guards spec
	spec    ResourceSpec
	lim     Limiter
	waiting atomic.Int64
}

func (r *resource) getSpec() ResourceSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spec
}

// NewResources builds the set of resources declared by specs.
func NewResources(specs []ResourceSpec, opts ResourcesOptions) (*Resources, error) {
	r := &Resources{now: opts.Now, poll: opts.Poll, byName: map[string]*resource{}}
	if r.now == nil {
		r.now = time.Now
	}
	if r.poll <= 0 {
		r.poll = 20 * time.Millisecond
	}
	now := r.now()
	for _, s := range specs {
		if _, dup := r.byName[s.Name]; dup {
			return nil, fmt.Errorf("%w %q: resource %q is declared twice; declare each name once", ErrBadResource, s.String(), s.Name)
		}
		if !validName(s.Name) || (s.Kind != KindRate && s.Kind != KindPool) {
			return nil, fmt.Errorf("%w %q: needs a name and a kind (rate or pool); build specs with ParseResource", ErrBadResource, s.String())
		}
		if s.Scope == "" {
			s.Scope = ScopeNode
		}
		var lim Limiter
		if s.Scope.Shared() && opts.Shared != nil {
			lim = opts.Shared(s)
		}
		if lim == nil {
			if s.Kind == KindPool {
				lim = NewPool(s.Size)
			} else {
				lim = NewTokenBucket(s.Rate, s.Burst, now)
			}
		}
		res := &resource{spec: s, lim: lim}
		r.byName[s.Name] = res
		r.list = append(r.list, res)
	}
	slices.SortFunc(r.list, func(a, b *resource) int { return strings.Compare(a.spec.Name, b.spec.Name) })
	return r, nil
}

// Specs returns the declarations, sorted by name.
func (r *Resources) Specs() []ResourceSpec {
	out := make([]ResourceSpec, len(r.list))
	for i, res := range r.list {
		out[i] = res.getSpec()
	}
	return out
}

// Limiter returns the limiter of a resource, or nil if there is none.
func (r *Resources) Limiter(name string) Limiter {
	if res := r.byName[name]; res != nil {
		return res.lim
	}
	return nil
}

// Demands returns what one call of builtin with args consumes: the demands
// its Go integration declares, plus one unit of every resource whose binding
// matches the call and that it does not already declare.
func (r *Resources) Demands(builtin string, args json.RawMessage, declared []Demand) []Demand {
	out := slices.Clone(declared)
	b := binder{builtin: builtin, args: args}
	for _, res := range r.list {
		out = b.bind(res.getSpec(), out)
	}
	return out
}

// Bind returns declared plus one unit of every resource in specs whose
// binding matches a call of builtin with args and that declared lacks. A
// coordinator binds the resources other nodes declare this way, so that a
// step is placed by a resource its own node does not have.
func Bind(specs []ResourceSpec, builtin string, args json.RawMessage, declared []Demand) []Demand {
	b := binder{builtin: builtin, args: args}
	for _, s := range specs {
		declared = b.bind(s, declared)
	}
	return declared
}

// binder matches one call against resource bindings, reading the call's
// host at most once.
type binder struct {
	builtin  string
	args     json.RawMessage
	host     string
	hostRead bool
}

func (b *binder) bind(s ResourceSpec, out []Demand) []Demand {
	if !s.matchesBuiltin(b.builtin) || slices.ContainsFunc(out, func(d Demand) bool { return d.Resource == s.Name }) {
		return out
	}
	if len(s.Hosts) > 0 {
		if !b.hostRead {
			b.host, b.hostRead = urlHost(b.args), true
		}
		if !s.matchesHost(b.host) {
			return out
		}
	}
	return append(out, Demand{Resource: s.Name, Amount: 1})
}

// Take takes every demanded unit or none. When it cannot, it returns the first
// resource that is short and how long until it may not be (see Limiter.Take).
// Demands of resources this node does not declare are not limited here.
func (r *Resources) Take(demands []Demand) (ok bool, wait time.Duration, short string) {
	now := r.now()
	for i, d := range demands {
		res := r.byName[d.Resource]
		if res == nil || d.Amount <= 0 {
			continue
		}
		if ok, w := res.lim.Take(d.Amount, now); !ok {
			r.giveBack(demands[:i], now)
			return false, w, d.Resource
		}
	}
	return true, 0, ""
}

func (r *Resources) giveBack(demands []Demand, now time.Time) {
	for _, d := range demands {
		if res := r.byName[d.Resource]; res != nil && d.Amount > 0 {
			res.lim.Put(d.Amount, now)
		}
	}
}

// Release returns a finished step's pool units; spent tokens stay spent. It
// reports whether it gave any pool unit back (peers placing steps that need
// the pool then want to know).
func (r *Resources) Release(demands []Demand) (freed bool) {
	now := r.now()
	for _, d := range demands {
		if res := r.byName[d.Resource]; res != nil && d.Amount > 0 && res.getSpec().Kind == KindPool {
			res.lim.Put(d.Amount, now)
			freed = true
		}
	}
	r.mu.Lock()
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
	r.mu.Unlock()
	return freed
}

func (r *Resources) changedChan() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// A WaitError is returned by Wait when a step's units did not become free.
type WaitError struct {
	Resource string        // the resource that was short
	Waited   time.Duration // how long the step waited
	Err      error         // the context's error, or ErrExceedsCapacity
}

// Error implements error.
func (e *WaitError) Error() string {
	return fmt.Sprintf("meter: waited %s for %s: %v", e.Waited.Round(time.Millisecond), e.Resource, e.Err)
}

// Unwrap returns the cause.
func (e *WaitError) Unwrap() error { return e.Err }

// Wait takes every demanded unit, blocking until they are free or ctx is
// done. While it blocks, the step counts as waiting for the short resource
// (Waiting, and States' Waiting). It returns a *WaitError on failure.
func (r *Resources) Wait(ctx context.Context, demands []Demand) error {
	ok, wait, short := r.Take(demands)
	if ok {
		return nil
	}
	start := r.now()
	counted := r.byName[short]
	counted.waiting.Add(1)
	defer func() { counted.waiting.Add(-1) }()
	for {
		if wait < 0 {
			return &WaitError{Resource: short, Waited: r.now().Sub(start),
				Err: fmt.Errorf("%w: %s", ErrExceedsCapacity, r.byName[short].getSpec())}
		}
		changed := r.changedChan()
		d := wait
		if d <= 0 || d > r.poll {
			d = r.poll
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return &WaitError{Resource: short, Waited: r.now().Sub(start), Err: ctx.Err()}
		case <-changed:
			t.Stop()
		case <-t.C:
		}
		if ok, wait, short = r.Take(demands); ok {
			return nil
		}
		if res := r.byName[short]; res != counted {
			counted.waiting.Add(-1)
			counted = res
			counted.waiting.Add(1)
		}
	}
}

// Free returns the units of the named resource free now, and whether the
// node declares it.
func (r *Resources) Free(name string) (float64, bool) {
	res := r.byName[name]
	if res == nil {
		return 0, false
	}
	return res.lim.Free(r.now()), true
}

// Waiting returns the number of steps blocked in Wait for the named resource.
func (r *Resources) Waiting(name string) int {
	if res := r.byName[name]; res != nil {
		return int(res.waiting.Load())
	}
	return 0
}

// Update changes a resource's limit at runtime (rate and burst, or size);
// its kind, scope and bindings stay. A shared resource is changed where it
// is backed, not here.
func (r *Resources) Update(spec ResourceSpec) error {
	res := r.byName[spec.Name]
	if res == nil {
		return fmt.Errorf("%w %q: no resource %q on this node", ErrBadResource, spec.String(), spec.Name)
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	if spec.Kind != res.spec.Kind {
		return fmt.Errorf("%w %q: %s is a %s, not a %s", ErrBadResource, spec.String(), spec.Name, res.spec.Kind, spec.Kind)
	}
	switch lim := res.lim.(type) {
	case *TokenBucket:
		lim.SetLimit(spec.Rate, spec.Burst, r.now())
		res.spec.Rate, res.spec.Burst = spec.Rate, spec.Burst
	case *Pool:
		lim.Resize(spec.Size)
		res.spec.Size = spec.Size
	default:
		return fmt.Errorf("%w %q: %s is shared; change it where it is backed", ErrBadResource, spec.String(), spec.Name)
	}
	return nil
}

// ResourceState is what a node publishes about one custom resource.
type ResourceState struct {
	Kind     Kind    `json:"kind"`
	Scope    Scope   `json:"scope"`
	Free     float64 `json:"free"`           // units free when measured
	Capacity float64 `json:"capacity"`       // a bucket's burst or a pool's size
	Rate     float64 `json:"rate,omitempty"` // a bucket's refill, units per second
	Waiting  int     `json:"waiting"`        // steps on this node waiting for units
	// Builtins and Hosts are the resource's bindings (see ResourceSpec), so
	// that coordinators without the resource still count it in demands.
	Builtins []string `json:"builtins,omitempty"`
	Hosts    []string `json:"hosts,omitempty"`
}

// States returns the state of every resource, by name.
func (r *Resources) States() map[string]ResourceState {
	now := r.now()
	out := make(map[string]ResourceState, len(r.list))
	for _, res := range r.list {
		s := res.getSpec()
		st := ResourceState{Kind: s.Kind, Scope: s.Scope, Free: res.lim.Free(now), Capacity: s.Capacity(), Waiting: int(res.waiting.Load()),
			Builtins: s.Builtins, Hosts: s.Hosts}
		switch lim := res.lim.(type) {
		case *TokenBucket:
			st.Rate, st.Capacity = lim.Limit()
		case *Pool:
			st.Capacity = float64(lim.Size())
		default:
			if s.Kind == KindRate {
				st.Rate = s.Rate
			}
		}
		out[s.Name] = st
	}
	return out
}
