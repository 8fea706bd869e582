package placement

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/meter"
)

// NodeState is a node's latest reading and when this coordinator received
// it. Seen, on the coordinator's clock, is what reservations and liveness are
// measured against, so clock skew between nodes does not matter.
type NodeState struct {
	meter.Reading
	Seen time.Time
	// Placing is the rate (steps per second) at which the node placed steps
	// as a coordinator between its two latest readings.
	Placing float64
}

// A View is what policies read: the latest reading of every live node. The
// engine keeps one per coordinator from the watched meter bucket (MemView);
// policies never reach the network.
type View interface {
	// Nodes returns the live nodes sorted by name. The slice and the readings
	// are shared: callers must not modify them.
	Nodes() []NodeState
}

// MemView is an in-memory View: the engine (or a simulator) puts every reading
// it receives and deletes nodes whose heartbeat expired. Nodes not seen for
// TTL are left out even before they are deleted. It is safe for concurrent
// use.
//
// Put updates a working copy in place; Nodes hands out a snapshot of it,
// copied again only after a change. Every node hears every node's heartbeat
// each second, so a coordinator placing steps without pause would copy the
// view on every heartbeat, O(N) each and O(N²) a second: for views of more
// than batchAbove nodes the snapshot is copied at most every batchEvery, and
// readings are then up to that much older when placement reads them (a
// heartbeat is a second apart anyway). Deleting a node is seen at once.
type MemView struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	work    []NodeState // every node put, sorted by name; updated in place, never handed out
	all     []NodeState // the snapshot of work that readers get
	dirty   bool        // work has changed since all was copied
	force   bool        // ... by a Delete: copy at the next read
	built   time.Time   // when all was copied
	live    []NodeState // the nodes of all seen within TTL; nil when stale
	expires time.Time   // when the oldest node in live expires
	changed chan struct{}
}

// Views of more nodes than batchAbove copy their snapshot at most every
// batchEvery (MemView).
const (
	batchAbove = 64
	batchEvery = 100 * time.Millisecond
)

// SnapshotEvery is how often a MemView of n nodes copies its snapshot at
// most: 0 (at every read after a change) up to batchAbove nodes.
func SnapshotEvery(n int) time.Duration {
	if n <= batchAbove {
		return 0
	}
	return batchEvery
}

// NewMemView returns an empty view whose nodes expire TTL after their latest
// reading (0: never). now is the clock (nil: time.Now).
func NewMemView(ttl time.Duration, now func() time.Time) *MemView {
	if now == nil {
		now = time.Now
	}
	return &MemView{ttl: ttl, now: now}
}

// findNode returns where node name is, or would be, in nodes sorted by name
// (as View.Nodes returns them), and whether it is there.
func findNode(nodes []NodeState, name string) (int, bool) {
	return slices.BinarySearchFunc(nodes, name, func(n NodeState, name string) int { return strings.Compare(n.Node, name) })
}

// indexOf returns the index of node name in nodes sorted by name, or -1
// when it is not there or name is empty.
func indexOf(nodes []NodeState, name string) int {
	if name == "" {
		return -1
	}
	i, ok := findNode(nodes, name)
	if !ok {
		return -1
	}
	return i
}

// Put records a node's reading, received now.
func (v *MemView) Put(r meter.Reading) {
	st := NodeState{Reading: r, Seen: v.now()}
	v.mu.Lock()
	defer v.mu.Unlock()
	i, ok := findNode(v.work, r.Node)
	if ok {
		prev := v.work[i]
		if dt := r.Time.Sub(prev.Time).Seconds(); dt > 0 && r.Placed >= prev.Placed {
			st.Placing = float64(r.Placed-prev.Placed) / dt
		} else {
			st.Placing = prev.Placing
		}
		v.work[i] = st
	} else {
		v.work = slices.Insert(v.work, i, st)
	}
	v.dirty = true
	v.notifyLocked()
}

// Delete drops a node (its heartbeat expired, or it left).
func (v *MemView) Delete(node string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if i, ok := findNode(v.work, node); ok {
		v.work = slices.Delete(v.work, i, i+1)
		v.dirty, v.force = true, true
		v.notifyLocked()
	}
}

func (v *MemView) notifyLocked() {
	if v.changed != nil {
		close(v.changed)
		v.changed = nil
	}
}

// Changed returns a channel closed at the next Put or Delete; a policy
// waiting for a node uses it to look again as soon as a reading arrives.
func (v *MemView) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.changed == nil {
		v.changed = make(chan struct{})
	}
	return v.changed
}

// Nodes implements View.
func (v *MemView) Nodes() []NodeState {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dirty && (v.force || len(v.work) <= batchAbove || now.Sub(v.built) >= batchEvery) {
		v.all, v.live = slices.Clone(v.work), nil
		v.dirty, v.force, v.built = false, false, now
	}
	if v.ttl <= 0 {
		return v.all
	}
	if v.live != nil && now.Before(v.expires) {
		return v.live
	}
	expired := false
	var oldest time.Time
	for _, n := range v.all {
		if now.Sub(n.Seen) >= v.ttl {
			expired = true
			continue
		}
		if oldest.IsZero() || n.Seen.Before(oldest) {
			oldest = n.Seen
		}
	}
	live := v.all
	if expired {
		live = make([]NodeState, 0, len(v.all))
		for _, n := range v.all {
			if now.Sub(n.Seen) < v.ttl {
				live = append(live, n)
			}
		}
	}
	if live == nil {
		live = []NodeState{} // non-nil: the cache is valid
	}
	v.live, v.expires = live, oldest.Add(v.ttl)
	return live
}
