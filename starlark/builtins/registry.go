package builtins

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// A Registry holds the builtins scripts can call. The zero value is not usable;
// create one with NewRegistry or start from Default.Clone().
type Registry struct {
	mu           sync.RWMutex
	steps        map[string]*Step
	inline       map[string]starlark.Value
	integrations map[string]*Integration
}

// Default is the registry that integrations register into from init functions.
var Default = NewRegistry()

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{steps: map[string]*Step{}, inline: map[string]starlark.Value{}, integrations: map[string]*Integration{}}
}

// MustRegister adds a step builtin. It panics on an empty or duplicate name, or
// on a step without Exec: both are programming errors found at init time.
func (r *Registry) MustRegister(s *Step) {
	if s == nil || s.Name == "" || s.Exec == nil {
		panic("builtins: MustRegister needs a Step with a Name and an Exec")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkFree(s.Name)
	r.steps[s.Name] = s
}

// MustRegisterInline adds an inline (non-step) builtin or module under name,
// e.g. "json" or "log.info". It panics on an empty or duplicate name.
func (r *Registry) MustRegisterInline(name string, v starlark.Value) {
	if name == "" || v == nil {
		panic("builtins: MustRegisterInline needs a name and a value")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkFree(name)
	r.inline[name] = v
}

func (r *Registry) checkFree(name string) {
	if _, dup := r.steps[name]; dup {
		panic(fmt.Sprintf("builtins: %q registered twice", name))
	}
	if _, dup := r.inline[name]; dup {
		panic(fmt.Sprintf("builtins: %q registered twice", name))
	}
}

// Lookup returns the step builtin called name, or an error wrapping ErrUnknownBuiltin.
func (r *Registry) Lookup(name string) (*Step, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s, ok := r.steps[name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownBuiltin, name)
}

// Steps returns the names of all step builtins, sorted.
func (r *Registry) Steps() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return sortedKeys(r.steps)
}

// Clone returns an independent copy of r.
func (r *Registry) Clone() *Registry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := NewRegistry()
	for k, v := range r.steps {
		c.steps[k] = v
	}
	for k, v := range r.inline {
		c.inline[k] = v
	}
	for k, v := range r.integrations {
		c.integrations[k] = v
	}
	return c
}

// Restrict returns a copy of r holding only the named builtins; a name that is a
// module ("http") keeps all its members.
func (r *Registry) Restrict(names ...string) *Registry {
	keep := func(n string) bool {
		for _, want := range names {
			if n == want || strings.HasPrefix(n, want+".") {
				return true
			}
		}
		return false
	}
	c := r.Clone()
	for k := range c.steps {
		if !keep(k) {
			delete(c.steps, k)
		}
	}
	for k := range c.inline {
		if !keep(k) {
			delete(c.inline, k)
		}
	}
	return c
}

// Predeclared builds the global names a script sees: each dotted name "m.f"
// becomes member f of a module m (a *starlarkstruct.Module); an undotted name is
// a global. An inline value registered under a bare module name (e.g. "json" as a
// whole module) is merged with dotted members of the same module.
func (r *Registry) Predeclared() starlark.StringDict {
	r.mu.RLock()
	defer r.mu.RUnlock()
	globals := starlark.StringDict{}
	members := map[string]starlark.StringDict{}
	add := func(name string, v starlark.Value) {
		mod, member, dotted := strings.Cut(name, ".")
		if !dotted {
			if m, ok := v.(*starlarkstruct.Module); ok {
				if members[name] == nil {
					members[name] = starlark.StringDict{}
				}
				for k, mv := range m.Members {
					members[name][k] = mv
				}
				return
			}
			globals[name] = v
			return
		}
		if members[mod] == nil {
			members[mod] = starlark.StringDict{}
		}
		members[mod][member] = v
	}
	for name, s := range r.steps {
		add(name, s.Builtin())
	}
	for name, v := range r.inline {
		add(name, v)
	}
	for mod, m := range members {
		globals[mod] = &starlarkstruct.Module{Name: mod, Members: m}
	}
	return globals
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
