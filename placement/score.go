package placement

import (
	"math"
	"slices"
	"sort"
	"time"
)

type candidate struct {
	node        int
	score, load float64
	mem         float64 // predicted memory use with the step, when high enough to count
}

// choose gathers the candidates in s.cand, scored, and returns the index of
// the best: the eligible nodes sampled by cores (total is theirs), plus the
// coordinator and the node holding the step's data.
func (a *Adaptive) choose(req Request, nodes []NodeState, now time.Time, pred prediction, total float64) int {
	s := &a.s
	s.cand = s.cand[:0]
	add := func(i int, onlyIfFree bool) {
		if i < 0 || !s.ok[i] || slices.ContainsFunc(s.cand, func(c candidate) bool { return c.node == i }) {
			return
		}
		sc, load, mem := a.score(&nodes[i], i, now, pred, req)
		if onlyIfFree && load > 1 {
			return
		}
		s.cand = append(s.cand, candidate{node: i, score: sc, load: load, mem: mem})
	}
	a.sample(total, min(a.opts.Choices, len(s.elig)), add)
	// The coordinator joins the sampled nodes only while it has a free core
	// for the step: it is asked about far more often than its share of the
	// cluster's cores, so a busy small coordinator would otherwise draw work
	// on stale readings. The node holding the step's data always joins.
	add(indexOf(nodes, req.Coordinator), true)
	add(indexOf(nodes, req.Prefer), false)
	if len(s.cand) == 0 { // cannot happen: sample adds at least one
		add(s.elig[0], false)
	}
	best := 0
	for i, c := range s.cand {
		if c.score < s.cand[best].score {
			best = i
		}
	}
	return best
}

// sample calls add with k distinct eligible nodes drawn with probability
// proportional to their cores.
func (a *Adaptive) sample(total float64, k int, add func(int, bool)) {
	s := &a.s
	if k >= len(s.elig) {
		for _, i := range s.elig {
			add(i, false)
		}
		return
	}
	var taken [8]int
	nt := 0
	remaining := total
	for nt < k && nt < len(taken) {
		r := a.rng.Float64() * remaining
		// Skip the intervals of nodes already taken.
		slices.Sort(taken[:nt])
		for _, t := range taken[:nt] {
			lo := 0.0
			if t > 0 {
				lo = s.cum[t-1]
			}
			if r >= lo {
				r += s.cum[t] - lo
			}
		}
		j := sort.SearchFloat64s(s.cum, r)
		for j < len(s.cum) && s.cum[j] <= r {
			j++
		}
		if j >= len(s.cum) {
			j = len(s.cum) - 1
		}
		if slices.Contains(taken[:nt], j) {
			break // floating-point edge: settle for fewer
		}
		lo := 0.0
		if j > 0 {
			lo = s.cum[j-1]
		}
		remaining -= s.cum[j] - lo
		taken[nt] = j
		nt++
		add(s.elig[j], false)
	}
}

// score predicts the step's completion time on node n, in seconds, the
// node's load with the step, and its memory use when high enough to weigh.
func (a *Adaptive) score(n *NodeState, i int, now time.Time, pred prediction, req Request) (score, load, memUse float64) {
	cores := float64(max(n.Cores, 1))
	inf, still, _ := a.inflight(n, now.Sub(n.Seen).Seconds())
	busy := max(n.CPU*cores, n.Runnable, inf) * still
	var mem, rc float64
	nowNs := now.UnixNano()
	for _, r := range a.node(n.Node).resv { // pruned by check
		if r.busyEnd > nowNs {
			rc += r.cores
			mem += r.mem
		}
	}
	f := a.spread(n)
	busy += rc * f
	mem *= f
	load = (busy + pred.cores) / cores
	score = pred.io + pred.cpuWall*math.Max(1, load) + 0.25*pred.cpuWall*math.Min(load, 1)
	if n.MemTotal > 0 && pred.mem > 0 {
		if f := (float64(n.MemUsed) + mem + pred.mem) / float64(n.MemTotal); f > memoryHigh {
			score += (f - memoryHigh) * 5 * pred.wall
			memUse = f
		}
	}
	score += 0.5 * pred.wall * a.s.press[i]
	if n.Node != req.Coordinator {
		score += a.opts.DispatchCost.Seconds()
	}
	if req.Prefer != "" && n.Node != req.Prefer {
		score += a.opts.Locality.Seconds()
	}
	return score, load, memUse
}

// memoryHigh is the share of a node's memory above which its use weighs on
// the score.
const memoryHigh = 0.8
