package script

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
)

// Program is a compiled script version.
type Program struct {
	Script  api.Script
	Hash    string
	globals starlark.StringDict
	files   map[string]*starlark.Program // by file name
}

// Compile parses and resolves every file of s against globals, collecting
// all errors rather than stopping at the first, and checks that the main
// file defines main. It returns an *api.CompileError listing every problem.
func Compile(s api.Script, globals starlark.StringDict) (*Program, error) {
	if _, ok := s.Files[s.Main]; s.Main == "" || !ok {
		return nil, &api.CompileError{Script: s.Name, Errors: []string{fmt.Sprintf("the script has no main file %q", s.Main)}}
	}
	p := &Program{Script: s, Hash: s.Hash(), globals: globals, files: map[string]*starlark.Program{}}
	var errs []string
	for name, src := range s.Files {
		f, prog, err := starlark.SourceProgramOptions(builtins.Dialect, name, src, globals.Has)
		if err != nil {
			errs = append(errs, compileErrors(err)...)
			f, _ = Parse(name, src) // nil on a syntax error: reported already
		}
		if name == s.Main && f != nil && !DefinesMain(f) {
			errs = append(errs, fmt.Sprintf("%s: no main function: define `def main(input):` as the entry point", s.Main))
		}
		p.files[name] = prog
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, &api.CompileError{Script: s.Name, Errors: errs}
	}
	return p, nil
}

func compileErrors(err error) []string {
	var list resolve.ErrorList
	if errors.As(err, &list) {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.Error()
		}
		return out
	}
	var se syntax.Error
	if errors.As(err, &se) {
		return []string{se.Error()}
	}
	return []string{err.Error()}
}

// DefinesMain reports whether f defines main at top level: a def, an
// assignment or a load.
func DefinesMain(f *syntax.File) bool {
	for _, stmt := range f.Stmts {
		switch st := stmt.(type) {
		case *syntax.DefStmt:
			if st.Name.Name == "main" {
				return true
			}
		case *syntax.AssignStmt:
			if id, ok := st.LHS.(*syntax.Ident); ok && id.Name == "main" {
				return true
			}
		case *syntax.LoadStmt:
			if slices.ContainsFunc(st.To, func(id *syntax.Ident) bool { return id.Name == "main" }) {
				return true
			}
		}
	}
	return false
}

// Parse parses one file of a script in Drover's dialect, without resolving
// it (for checks of its syntax tree, as deploy's lint does).
func Parse(name, src string) (*syntax.File, error) {
	return builtins.Dialect.Parse(name, src, 0)
}

// Globals returns the names scripts see: reg's builtins, plus fail and the
// interpreter's own, parallel and patched.
func Globals(reg *builtins.Registry) starlark.StringDict {
	g := reg.Predeclared()
	g["fail"] = starlark.Universe["fail"]
	g["parallel"] = starlark.NewBuiltin("parallel", builtinParallel)
	g["patched"] = starlark.NewBuiltin("patched", builtinPatched)
	return g
}

// Compiler compiles script versions against one registry and keeps each
// program by content hash, so a version is compiled once per process. It is
// safe for concurrent use.
type Compiler struct {
	globals  starlark.StringDict
	programs sync.Map // hash → *Program
}

// NewCompiler returns a compiler of scripts that see reg's builtins.
func NewCompiler(reg *builtins.Registry) *Compiler {
	return &Compiler{globals: Globals(reg)}
}

// Globals returns the names the compiler's scripts see.
func (c *Compiler) Globals() starlark.StringDict { return c.globals }

// Cached returns the version with content hash hash if it was compiled
// before, else nil.
func (c *Compiler) Cached(hash string) *Program {
	if p, ok := c.programs.Load(hash); ok {
		return p.(*Program)
	}
	return nil
}

// Compile returns the compiled version s, from the cache when it was
// compiled before.
func (c *Compiler) Compile(s api.Script) (*Program, error) {
	hash := s.Hash()
	if p := c.Cached(hash); p != nil {
		return p, nil
	}
	p, err := Compile(s, c.globals)
	if err != nil {
		return nil, err
	}
	c.programs.Store(hash, p)
	return p, nil
}
