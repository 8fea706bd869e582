package placement

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
)

// The policies below are baselines for comparison (placement/sim): they read
// the same View but know nothing of resources, profiles or reservations.

// Random places each step on a live node chosen uniformly at random.
type Random struct {
	view View
	mu   sync.Mutex
	rng  *rand.Rand
}

// NewRandom returns the random policy drawing from rng (nil: seeded from the
// clock).
func NewRandom(view View, rng *rand.Rand) *Random { return &Random{view: view, rng: orClock(rng)} }

func orClock(rng *rand.Rand) *rand.Rand {
	if rng == nil {
		return Options{}.withDefaults().Rand
	}
	return rng
}

// Place implements Policy.
func (p *Random) Place(context.Context, Request) (Decision, error) {
	nodes := p.view.Nodes()
	if len(nodes) == 0 {
		return Decision{}, ErrNoNode
	}
	p.mu.Lock()
	i := p.rng.IntN(len(nodes))
	p.mu.Unlock()
	return Decision{Node: nodes[i].Node, Load: nodes[i].Load(), Reason: "random: " + nodes[i].Node + " of " + strconv.Itoa(len(nodes))}, nil
}

// RoundRobin places steps on the live nodes in turn.
type RoundRobin struct {
	view View
	mu   sync.Mutex
	next uint64
}

// NewRoundRobin returns the round-robin policy.
func NewRoundRobin(view View) *RoundRobin { return &RoundRobin{view: view} }

// Place implements Policy.
func (p *RoundRobin) Place(context.Context, Request) (Decision, error) {
	nodes := p.view.Nodes()
	if len(nodes) == 0 {
		return Decision{}, ErrNoNode
	}
	p.mu.Lock()
	i := int(p.next % uint64(len(nodes)))
	p.next++
	p.mu.Unlock()
	return Decision{Node: nodes[i].Node, Load: nodes[i].Load(), Reason: "round-robin: " + nodes[i].Node}, nil
}

// LeastLoaded places each step on the live node with the lowest load in its
// latest reading (meter.Reading.Load). With stale readings every coordinator
// picks the same node until the next one arrives.
type LeastLoaded struct{ view View }

// NewLeastLoaded returns the least-loaded policy.
func NewLeastLoaded(view View) *LeastLoaded { return &LeastLoaded{view: view} }

// Place implements Policy.
func (p *LeastLoaded) Place(context.Context, Request) (Decision, error) {
	nodes := p.view.Nodes()
	if len(nodes) == 0 {
		return Decision{}, ErrNoNode
	}
	best, bl := 0, nodes[0].Load()
	for i := 1; i < len(nodes); i++ {
		if l := nodes[i].Load(); l < bl {
			best, bl = i, l
		}
	}
	return Decision{Node: nodes[best].Node, Load: bl, Score: bl,
		Reason: "least-loaded: " + nodes[best].Node + " (load " + strconv.FormatFloat(bl, 'f', 2, 64) + ")"}, nil
}

// PowerOfTwo is plain power-of-two-choices: it samples two live nodes
// uniformly and takes the one whose latest reading shows the lower load.
type PowerOfTwo struct {
	view View
	mu   sync.Mutex
	rng  *rand.Rand
}

// NewPowerOfTwo returns the plain power-of-two-choices policy drawing from
// rng (nil: seeded from the clock).
func NewPowerOfTwo(view View, rng *rand.Rand) *PowerOfTwo {
	return &PowerOfTwo{view: view, rng: orClock(rng)}
}

// Place implements Policy.
func (p *PowerOfTwo) Place(context.Context, Request) (Decision, error) {
	nodes := p.view.Nodes()
	if len(nodes) == 0 {
		return Decision{}, ErrNoNode
	}
	if len(nodes) == 1 {
		return Decision{Node: nodes[0].Node, Load: nodes[0].Load(), Reason: "p2c: " + nodes[0].Node + ", the only node"}, nil
	}
	p.mu.Lock()
	i := p.rng.IntN(len(nodes))
	j := p.rng.IntN(len(nodes) - 1)
	p.mu.Unlock()
	if j >= i {
		j++
	}
	li, lj := nodes[i].Load(), nodes[j].Load()
	if lj < li {
		i, j, li, lj = j, i, lj, li
	}
	return Decision{Node: nodes[i].Node, Load: li, Score: li,
		Reason: "p2c: " + nodes[i].Node + " (load " + strconv.FormatFloat(li, 'f', 2, 64) + ") over " +
			nodes[j].Node + " (" + strconv.FormatFloat(lj, 'f', 2, 64) + ")"}, nil
}
