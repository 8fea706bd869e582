package placement

import (
	"math"
	"strconv"
	"time"
)

// reason writes the decision's one-line explanation.
func (a *Adaptive) reason(req Request, nodes []NodeState, best int, waited time.Duration) string {
	s := &a.s
	b := append(s.buf[:0], "drover: "...)
	c := s.cand[best]
	b = append(b, nodes[c.node].Node...)
	b = append(b, " (load "...)
	b = strconv.AppendFloat(b, c.load, 'f', 2, 64)
	b = appendMem(b, c.mem)
	if nodes[c.node].Node == req.Coordinator {
		b = append(b, ", co-located"...)
	}
	if req.Prefer != "" && nodes[c.node].Node == req.Prefer {
		b = append(b, ", data-local"...)
	}
	b = append(b, ')')
	others := 0
	for i, o := range s.cand {
		if i == best {
			continue
		}
		if others == 0 {
			b = append(b, " over "...)
		} else {
			b = append(b, ", "...)
		}
		others++
		b = append(b, nodes[o.node].Node...)
		b = append(b, " ("...)
		b = strconv.AppendFloat(b, o.load, 'f', 2, 64)
		b = appendMem(b, o.mem)
		b = append(b, ')')
	}
	if others == 0 {
		b = append(b, ", the only eligible of "...)
		b = strconv.AppendInt(b, int64(len(nodes)), 10)
	}
	for k, in := range s.inelig {
		if k == 3 {
			b = append(b, " (+"...)
			b = strconv.AppendInt(b, int64(len(s.inelig)-3), 10)
			b = append(b, " more)"...)
			break
		}
		if k == 0 {
			b = append(b, "; "...)
		} else {
			b = append(b, ", "...)
		}
		b = append(b, nodes[in.node].Node...)
		switch in.why {
		case "lacks":
			b = append(b, " lacks "...)
			b = append(b, in.resource...)
		case "memory":
			b = append(b, " short of memory"...)
		default:
			b = append(b, ' ')
			b = append(b, in.resource...)
			b = append(b, ' ')
			b = append(b, in.why...)
		}
	}
	if waited = waited.Round(time.Millisecond); waited > 0 {
		b = append(b, "; waited "...)
		b = append(b, waited.String()...)
	}
	s.buf = b
	return string(b)
}

func appendMem(b []byte, use float64) []byte {
	if use <= 0 {
		return b
	}
	b = append(b, ", memory "...)
	b = strconv.AppendInt(b, int64(math.Round(use*100)), 10)
	return append(b, '%')
}

// detail describes why no node can take the step, for errors and the queue.
func (a *Adaptive) detail(resource string, nodes []NodeState) string {
	counts := map[string]int{}
	for _, in := range a.s.inelig {
		if in.resource == resource {
			counts[in.why]++
		}
	}
	has := counts["exhausted"] + counts["too small"]
	switch {
	case resource == "memory":
		return "short on all " + strconv.Itoa(len(nodes)) + " live nodes"
	case counts["too small"] == has && has > 0:
		return "holds fewer units than demanded on every node that has it"
	case has == 0:
		return "declared by no live node"
	}
	return "exhausted on all " + strconv.Itoa(has) + " nodes that have it"
}
