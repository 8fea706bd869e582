package meter

import (
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
)

// PeerBindings keeps the bindings of resources that peers declare and this
// node does not, learnt from their readings, so that this node, coordinating,
// counts them in a step's demands (Bind) and placement sends the step where
// the resource is. Bindings are only added: a resource no live node declares
// does not limit placement. It is safe for concurrent use; Bind takes no lock.
type PeerBindings struct {
	mu    sync.Mutex
	specs []ResourceSpec
	pub   atomic.Pointer[[]ResourceSpec] // a new slice on each change: readers keep theirs
}

// Note learns the bindings of a peer's reading r, skipping resources that
// local (this node's resources) has.
func (p *PeerBindings) Note(r Reading, local *Resources) {
	for name, st := range r.Resources {
		if len(st.Builtins) == 0 || local.Limiter(name) != nil {
			continue
		}
		spec := ResourceSpec{Name: name, Kind: st.Kind, Scope: st.Scope, Builtins: st.Builtins, Hosts: st.Hosts}
		p.mu.Lock()
		known := slices.ContainsFunc(p.specs, func(s ResourceSpec) bool {
			return s.Name == name && slices.Equal(s.Builtins, spec.Builtins) && slices.Equal(s.Hosts, spec.Hosts)
		})
		if !known {
			specs := slices.DeleteFunc(slices.Clone(p.specs), func(s ResourceSpec) bool { return s.Name == name })
			specs = append(specs, spec)
			p.specs = specs
			p.pub.Store(&specs)
		}
		p.mu.Unlock()
	}
}

// Bind returns declared plus one unit of every peer resource bound to a call
// of builtin with args that declared lacks (see the function Bind).
func (p *PeerBindings) Bind(builtin string, args json.RawMessage, declared []Demand) []Demand {
	if specs := p.pub.Load(); specs != nil {
		return Bind(*specs, builtin, args, declared)
	}
	return declared
}
