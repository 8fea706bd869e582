package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/starlark/builtins"
)

// fileOptions are the Starlark dialect of Drover scripts: while loops, sets,
// recursion and top-level control flow are allowed; the execution-step limit
// guards against runaway loops.
var fileOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}

// Hash returns the content hash of a script version: sha256 over its main file
// name and files, independent of its display name.
func (s *Script) Hash() string {
	names := make([]string, 0, len(s.Files))
	for k := range s.Files {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "main=%q\n", s.Main)
	for _, k := range names {
		fmt.Fprintf(h, "file=%q %d\n%s\n", k, len(s.Files[k]), s.Files[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// program is a compiled script version.
type program struct {
	script Script
	hash   string
	progs  map[string]*starlark.Program // by file name
}

// compile returns the compiled script version, cached by content hash.
func (n *Node) compile(s Script) (*program, error) {
	hash := s.Hash()
	if p, ok := n.programs.Load(hash); ok {
		return p.(*program), nil
	}
	p, err := compileProgram(s, n.predeclared())
	if err != nil {
		return nil, err
	}
	n.programs.Store(hash, p)
	return p, nil
}

// compileProgram parses and resolves every file of s against the predeclared
// names, collecting all errors rather than stopping at the first.
func compileProgram(s Script, predeclared starlark.StringDict) (*program, error) {
	if s.Main == "" || !hasKey(s.Files, s.Main) {
		return nil, &CompileError{Script: s.Name, Errors: []string{fmt.Sprintf("the script has no main file %q", s.Main)}}
	}
	p := &program{script: s, hash: s.Hash(), progs: map[string]*starlark.Program{}}
	var errs []string
	for name, src := range s.Files {
		_, prog, err := starlark.SourceProgramOptions(fileOptions, name, src, predeclared.Has)
		if err != nil {
			errs = append(errs, compileErrors(err)...)
			continue
		}
		p.progs[name] = prog
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, &CompileError{Script: s.Name, Errors: errs}
	}
	return p, nil
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

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

// predeclared returns the global names scripts see.
func (n *Node) predeclared() starlark.StringDict {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.globals == nil {
		n.globals = globalsOf(n.opts.Registry)
	}
	return n.globals
}

// globalsOf returns the names scripts see: the registry's builtins plus the
// engine's own (parallel, patched).
func globalsOf(reg *builtins.Registry) starlark.StringDict {
	g := reg.Predeclared()
	g["fail"] = starlark.Universe["fail"]
	for name, b := range engineBuiltins {
		g[name] = b
	}
	return g
}

// storeScript saves the script version under its content hash (idempotent).
func (n *Node) storeScript(ctx context.Context, s Script, hash string) error {
	if _, ok := n.stored.Load(hash); ok {
		return nil
	}
	data, err := encodeJSON(s)
	if err != nil {
		return err
	}
	if _, err := n.bus.Bucket(bus.ScriptsBucket).Create(ctx, "sha256."+hash, data); err != nil && !errors.Is(err, bus.ErrExists) {
		return fmt.Errorf("engine: store script %s: %w", s.Name, err)
	}
	n.stored.Store(hash, true)
	return nil
}

// LoadScript returns the script version stored under hash.
func (n *Node) LoadScript(ctx context.Context, hash string) (*Script, error) {
	data, _, err := n.bus.Bucket(bus.ScriptsBucket).Get(ctx, "sha256."+hash)
	if err != nil {
		return nil, fmt.Errorf("engine: script version %s: %w", hash, err)
	}
	var s Script
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("engine: script version %s is corrupt: %w", hash, err)
	}
	return &s, nil
}

func isNotFound(err error) bool { return errors.Is(err, bus.ErrNotFound) }

// interp returns the interpreter of prog with this node's globals and limits.
func (n *Node) interp(prog *program) *interp {
	return &interp{
		prog: prog, globals: n.predeclared(), maxSteps: n.opts.MaxExecSteps, payloadLimit: n.opts.PayloadLimit,
		print: func(msg string) { n.log.Info().Str("source", "print").Msg(msg) },
	}
}
