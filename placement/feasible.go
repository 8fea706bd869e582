package placement

import (
	"math"
	"slices"
	"time"

	"github.com/droverhq/drover/meter"
)

type demandInfo struct {
	meter.Demand
	known bool // some live node declares the resource
}

type freshState struct {
	key  sharedKey
	st   meter.ResourceState
	seen time.Time
}

// collectDemands notes which demanded resources some live node declares, and
// the freshest reading of every shared one.
func (a *Adaptive) collectDemands(demands []meter.Demand, nodes []NodeState) {
	s := &a.s
	s.demands, s.fresh = s.demands[:0], s.fresh[:0]
	for _, d := range demands {
		if d.Amount > 0 && d.Resource != "" && d.Resource != meter.CPU && d.Resource != meter.Memory {
			s.demands = append(s.demands, demandInfo{Demand: d})
		}
	}
	if len(s.demands) == 0 {
		return
	}
	for i := range nodes {
		n := &nodes[i]
		for j := range s.demands {
			st, ok := n.Resources[s.demands[j].Resource]
			if !ok {
				continue
			}
			s.demands[j].known = true
			if !st.Scope.Shared() {
				continue
			}
			key := sharedKey{s.demands[j].Resource, st.Scope}
			k := slices.IndexFunc(s.fresh, func(f freshState) bool { return f.key == key })
			switch {
			case k < 0:
				s.fresh = append(s.fresh, freshState{key: key, st: st, seen: n.Seen})
			case n.Seen.After(s.fresh[k].seen):
				s.fresh[k].st, s.fresh[k].seen = st, n.Seen
			}
		}
	}
}

// feasible sorts the nodes into those that can take the step, in s.elig
// with their cumulative cores in s.cum for sampling, and those that cannot,
// in s.inelig with why and when they might; s.ok and s.press (the pressure
// of nearly empty buckets) are by node. It returns the eligible nodes' cores.
func (a *Adaptive) feasible(nodes []NodeState, now time.Time, pred prediction) float64 {
	s := &a.s
	// Memory constrains only if the step fits some node at all: a profile
	// that fits nowhere is more likely wrong than every node too small.
	memHard := false
	if pred.mem > 0 {
		for i := range nodes {
			if u := a.usable(&nodes[i]); u > 0 && u >= pred.mem {
				memHard = true
				break
			}
		}
	}

	s.elig, s.cum, s.inelig = s.elig[:0], s.cum[:0], s.inelig[:0]
	s.ok = slices.Grow(s.ok[:0], len(nodes))[:len(nodes)]
	s.press = slices.Grow(s.press[:0], len(nodes))[:len(nodes)]
	total := 0.0
	for i := range nodes {
		in, press, ok := a.check(&nodes[i], i, now, pred, memHard)
		s.ok[i], s.press[i] = ok, press
		if !ok {
			s.inelig = append(s.inelig, in)
			continue
		}
		total += float64(max(nodes[i].Cores, 1))
		s.elig = append(s.elig, i)
		s.cum = append(s.cum, total)
	}
	return total
}

type inelig struct {
	node     int
	why      string // "lacks", "exhausted", "too small", "memory"
	resource string
	wait     time.Duration // until it may take the step; <0 never; 0 unknown
}

// check says whether node n can take the step now, and if not why and when it
// might; press is the pressure of its nearly empty buckets on the score.
func (a *Adaptive) check(n *NodeState, i int, now time.Time, pred prediction, memHard bool) (in inelig, press float64, ok bool) {
	s := &a.s
	nowNs := now.UnixNano()
	resv := a.pruneNode(n.Node, n.Seen.UnixNano(), nowNs)
	for _, d := range s.demands {
		if !d.known {
			continue // declared by no live node: not limited
		}
		st, has := n.Resources[d.Resource]
		if !has {
			return inelig{node: i, why: "lacks", resource: d.Resource, wait: -1}, 0, false
		}
		seen := n.Seen
		var reserved float64
		if st.Scope.Shared() {
			key := sharedKey{d.Resource, st.Scope}
			if k := slices.IndexFunc(s.fresh, func(f freshState) bool { return f.key == key }); k >= 0 {
				st, seen = s.fresh[k].st, s.fresh[k].seen
			}
			for _, r := range a.pruneShared(key, seen.UnixNano(), nowNs) {
				reserved += r.amount
			}
		} else {
			for _, r := range resv {
				for _, u := range r.units {
					if u.res == d.Resource && (u.rate || r.until > nowNs) {
						reserved += u.amount
					}
				}
			}
		}
		if d.Amount > st.Capacity+1e-9 {
			return inelig{node: i, why: "too small", resource: d.Resource, wait: -1}, 0, false
		}
		free := project(st, seen, now) - reserved
		if free+1e-9 < d.Amount {
			wait := time.Duration(0)
			if st.Rate > 0 {
				wait = time.Duration((d.Amount - free) / st.Rate * float64(time.Second))
			}
			return inelig{node: i, why: "exhausted", resource: d.Resource, wait: wait}, 0, false
		}
		if st.Kind == meter.KindRate && st.Capacity > 0 {
			press += 1 - (free-d.Amount)/st.Capacity
		}
	}
	if memHard && n.MemTotal > 0 {
		var reserved float64
		for _, r := range resv {
			if r.busyEnd > nowNs {
				reserved += r.mem
			}
		}
		used := float64(n.MemUsed) + reserved*a.spread(n)
		u := a.usable(n)
		if used+pred.mem > u {
			// Only near the limit: count what finished since the reading.
			_, _, freed := a.inflight(n, now.Sub(n.Seen).Seconds())
			used -= freed
		}
		if used+pred.mem > u {
			wait := time.Duration(0)
			if pred.mem > u {
				wait = -1
			}
			return inelig{node: i, why: "memory", resource: "memory", wait: wait}, 0, false
		}
	}
	return inelig{}, press, true
}

// project returns a resource's free units now: the measured free units,
// refilled at the bucket's rate since the reading, less the steps already
// waiting for them.
func project(st meter.ResourceState, seen, now time.Time) float64 {
	free := st.Free
	if st.Rate > 0 {
		if age := now.Sub(seen).Seconds(); age > 0 {
			free = math.Min(st.Capacity, free+st.Rate*age)
		}
	}
	return free - float64(st.Waiting)
}

func (a *Adaptive) usable(n *NodeState) float64 {
	return float64(n.MemTotal) * (1 - a.opts.MemoryReserve)
}
