package placement

import (
	"math"
	"time"

	"github.com/droverhq/drover/meter"
)

// reservation is a step this coordinator placed on a node that the node's
// readings do not show yet.
type reservation struct {
	// Unix nanoseconds on the coordinator's clock: placed at; pool units
	// held until the predicted end; cores and memory counted until busyEnd
	// (twice the predicted time: a step often runs longer than predicted on
	// a busy node); kept at most until end.
	at, until, busyEnd, end int64
	cores                   float64 // cores the step is predicted to use
	mem                     float64 // bytes
	units                   []unit  // node-scoped resource units
}

type unit struct {
	res    string
	amount float64
	rate   bool
}

type sharedKey struct {
	res   string
	scope meter.Scope
}

type sharedResv struct {
	at, until int64
	amount    float64
	rate      bool
}

// reserve records the step on node n until a newer reading shows it.
func (a *Adaptive) reserve(n *NodeState, now time.Time, pred prediction, load float64) {
	dur := pred.io + pred.cpuWall*math.Max(1, load) + a.opts.DispatchCost.Seconds()
	at := now.UnixNano()
	until := at + int64(math.Min(dur, 600)*1e9)
	r := reservation{at: at, until: until, busyEnd: until + (until - at), cores: pred.cores, mem: pred.mem}
	r.end = r.busyEnd
	for _, d := range a.s.demands {
		st, ok := n.Resources[d.Resource]
		if !ok {
			continue
		}
		rate := st.Kind == meter.KindRate
		if st.Scope.Shared() {
			key := sharedKey{d.Resource, st.Scope}
			a.shared[key] = append(a.shared[key], sharedResv{at: at, until: until, amount: d.Amount, rate: rate})
			continue
		}
		r.units = append(r.units, unit{res: d.Resource, amount: d.Amount, rate: rate})
		if rate {
			r.end = math.MaxInt64 // spent tokens: until a reading shows them
		}
	}
	pn := a.node(n.Node)
	pn.resv = append(pn.resv, r)
}

// spread is how much of node n's load placed since its reading this
// coordinator's reservations stand for: its own only on its own node (the
// others place little there), and those of every coordinator elsewhere,
// assuming they placed there as it did.
func (a *Adaptive) spread(n *NodeState) float64 {
	if n.Node == a.s.coord {
		return 1
	}
	return a.s.coords
}

// coordinators estimates how many coordinators' worth of placements there
// are for each of coord's: the cluster's placement rate over coord's own, at
// least 1 and at most the number of live nodes (the count when no rate is
// known yet).
func coordinators(nodes []NodeState, coord string) float64 {
	var total, own float64
	for i := range nodes {
		total += nodes[i].Placing
		if nodes[i].Node == coord {
			own = nodes[i].Placing
		}
	}
	n := float64(len(nodes))
	if total <= 0 {
		return n
	}
	return min(max(total/max(own, total/n), 1), n)
}

// pruneNode drops the node's reservations that a reading (seen) shows or that
// ended, and returns the rest.
func (a *Adaptive) pruneNode(node string, seen, now int64) []reservation {
	pn := a.per[node]
	if pn == nil || len(pn.resv) == 0 {
		return nil
	}
	rs := pn.resv
	keep := rs[:0]
	for _, r := range rs {
		if r.at >= seen && r.end > now {
			keep = append(keep, r)
		}
	}
	if len(keep) != len(rs) {
		clear(rs[len(keep):])
		pn.resv = keep
	}
	return keep
}

func (a *Adaptive) pruneShared(key sharedKey, seen, now int64) []sharedResv {
	rs := a.shared[key]
	if len(rs) == 0 {
		return nil
	}
	keep := rs[:0]
	for _, r := range rs {
		if r.at >= seen && (r.rate || r.until > now) {
			keep = append(keep, r)
		}
	}
	if len(keep) != len(rs) {
		a.shared[key] = keep
	}
	return keep
}

// sweep forgets reservations on nodes that left the view.
func (a *Adaptive) sweep(nodes []NodeState) {
	for name := range a.per {
		if indexOf(nodes, name) < 0 {
			delete(a.per, name)
		}
	}
	for k, v := range a.shared {
		if len(v) == 0 {
			delete(a.shared, k)
		}
	}
}
