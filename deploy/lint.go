package deploy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/script"
)

// lint is the deploy-time check of a script version, beyond compiling it
// (script.Compile): every load() names a file of the bundle, the load graph
// has no cycle, and every builtin called through a module (http.get) exists. It returns every problem found, each with its
// position, sorted.
func lint(s api.Script, predeclared starlark.StringDict) []string {
	var errs []string
	files := map[string]*syntax.File{}
	for name, src := range s.Files {
		f, err := script.Parse(name, src)
		if err != nil {
			continue // script.Compile reports syntax errors
		}
		files[name] = f
	}
	loads := map[string][]string{} // file → files it loads
	for name, f := range files {
		for _, stmt := range f.Stmts {
			ld, ok := stmt.(*syntax.LoadStmt)
			if !ok {
				continue
			}
			mod := strings.TrimPrefix(ld.ModuleName(), "./")
			if _, ok := s.Files[mod]; !ok {
				errs = append(errs, fmt.Sprintf("%s: load(%q): the bundle has no file %s (its files: %s)",
					ld.Load.String(), ld.ModuleName(), mod, strings.Join(sortedKeys(s.Files), ", ")))
				continue
			}
			loads[name] = append(loads[name], mod)
		}
		errs = append(errs, checkModuleCalls(f, predeclared)...)
	}
	if cycle := loadCycle(loads); cycle != nil {
		errs = append(errs, fmt.Sprintf("load cycle: %s; a file cannot load itself, directly or through others", strings.Join(cycle, " → ")))
	}
	sort.Strings(errs)
	return errs
}

// checkModuleCalls finds module.attr expressions on predeclared modules
// (http.gett) whose attribute does not exist, unless the file rebinds the
// module's name.
func checkModuleCalls(f *syntax.File, predeclared starlark.StringDict) []string {
	shadowed := map[string]bool{}
	bind := func(e syntax.Expr) {
		syntax.Walk(e, func(n syntax.Node) bool {
			if id, ok := n.(*syntax.Ident); ok {
				shadowed[id.Name] = true
			}
			return true
		})
	}
	params := func(ps []syntax.Expr) {
		for _, p := range ps {
			switch p := p.(type) {
			case *syntax.BinaryExpr: // name=default
				bind(p.X)
			case *syntax.UnaryExpr: // *args, **kwargs
				if p.X != nil {
					bind(p.X)
				}
			default:
				bind(p)
			}
		}
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch st := n.(type) {
		case *syntax.DefStmt:
			shadowed[st.Name.Name] = true
			params(st.Params)
		case *syntax.LambdaExpr:
			params(st.Params)
		case *syntax.AssignStmt:
			bind(st.LHS)
		case *syntax.ForStmt:
			bind(st.Vars)
		case *syntax.ForClause:
			bind(st.Vars)
		case *syntax.LoadStmt:
			for _, id := range st.To {
				shadowed[id.Name] = true
			}
		}
		return true
	})
	var errs []string
	syntax.Walk(f, func(n syntax.Node) bool {
		dot, ok := n.(*syntax.DotExpr)
		if !ok {
			return true
		}
		id, ok := dot.X.(*syntax.Ident)
		if !ok || shadowed[id.Name] {
			return true
		}
		mod, ok := predeclared[id.Name].(starlark.HasAttrs)
		if !ok {
			return true
		}
		names := mod.AttrNames()
		if slices.Contains(names, dot.Name.Name) {
			return true
		}
		msg := fmt.Sprintf("%s: %s has no builtin %q (it has: %s)", dot.Name.NamePos.String(), id.Name, dot.Name.Name, strings.Join(names, ", "))
		if near := nearest(dot.Name.Name, names); near != "" {
			msg = fmt.Sprintf("%s: %s has no builtin %q; did you mean %s.%s?", dot.Name.NamePos.String(), id.Name, dot.Name.Name, id.Name, near)
		}
		errs = append(errs, msg)
		return true
	})
	return errs
}

// loadCycle returns one cycle of the load graph, as file names ending where
// it starts, or nil.
func loadCycle(loads map[string][]string) []string {
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(string) []string
	visit = func(f string) []string {
		state[f] = open
		stack = append(stack, f)
		for _, g := range loads[f] {
			switch state[g] {
			case open:
				i := slices.Index(stack, g)
				return append(slices.Clone(stack[i:]), g)
			case unseen:
				if c := visit(g); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[f] = done
		return nil
	}
	for _, f := range sortedKeys(loads) {
		if state[f] == unseen {
			if c := visit(f); c != nil {
				return c
			}
		}
	}
	return nil
}

// nearest returns the name within edit distance 2 of s, or "".
func nearest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
