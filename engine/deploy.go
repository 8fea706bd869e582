package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/bus"
)

// Deployments: a named script's versions are stored by content hash
// ("sha256.<hash>" in the scripts bucket, shared with ad-hoc runs); the name's
// pointer "live.<name>" says which version new runs use, and moves by
// compare-and-set, for the whole bundle at once. Every deploy and rollback
// then writes "hist.<name>.<version>", create-only, so the history is
// append-only. Every node watches the pointers and keeps each name's live
// version compiled, so a deploy reaches new runs on every node without a
// restart; a run keeps the version it started with to its end.

// Deployment is one version of a deployed script.
type Deployment struct {
	Name    string    `json:"name"`
	Version int       `json:"version"` // 1, 2, ... per name
	Hash    string    `json:"hash"`    // content hash of the bundle (Script.Hash)
	Main    string    `json:"main"`
	Files   []string  `json:"files"` // file names of the bundle, sorted
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at"`
	// Note says how the version came about, e.g. "rollback to version 3".
	Note string `json:"note,omitempty"`
	// Replayed is how many past runs were replayed against it before the
	// deploy (DeployRequest.CheckReplay).
	Replayed int `json:"replayed,omitempty"`
}

// DeployRequest is the body of POST /v1/scripts/{name}.
type DeployRequest struct {
	Script Script `json:"script"` // the bundle; its Name is set from the URL
	By     string `json:"by,omitempty"`
	// CheckReplay replays the latest CheckReplay finished runs of the name
	// against the new version and refuses the deploy if any diverges.
	CheckReplay int `json:"check_replay,omitempty"`
}

// RollbackRequest is the body of POST /v1/scripts/{name}/rollback.
type RollbackRequest struct {
	Version int    `json:"version,omitempty"` // 0: the version live before the current one
	By      string `json:"by,omitempty"`
}

// ScriptVersion is a deployment with its sources (GET /v1/scripts/{name}).
type ScriptVersion struct {
	Deployment
	Sources map[string]string `json:"sources"`
}

var (
	// ErrUnknownScript is returned for a name that was never deployed.
	ErrUnknownScript = errors.New("engine: unknown script")
	// ErrReplayDiverged is what a *ReplayCheckError unwraps to.
	ErrReplayDiverged = errors.New("engine: deploy refused: past runs diverge from the new version")
)

// ReplayCheckError refuses a deploy whose new version no longer replays some
// of the name's past runs.
type ReplayCheckError struct {
	Name      string
	Checked   int
	Divergent []DivergentRun
}

// DivergentRun is one run that the new version does not replay.
type DivergentRun struct {
	Run   string `json:"run"`
	Error string `json:"error"`
}

// Unwrap returns ErrReplayDiverged.
func (e *ReplayCheckError) Unwrap() error { return ErrReplayDiverged }

// Error implements error.
func (e *ReplayCheckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy of %s refused: %d of the %d runs replayed diverge from the new version (the live version is unchanged)", e.Name, len(e.Divergent), e.Checked)
	for _, d := range e.Divergent {
		fmt.Fprintf(&b, "\n  run %s: %s", d.Run, strings.ReplaceAll(d.Error, "\n", "\n    "))
	}
	return b.String()
}

var scriptNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// checkScriptName refuses names that cannot be a bucket key token.
func checkScriptName(name string) error {
	if !scriptNameRE.MatchString(name) {
		return fmt.Errorf("%w: script name %q: use 1 to 64 letters, digits, '-' or '_' (e.g. checkout)", ErrBadInput, name)
	}
	return nil
}

func liveKey(name string) string { return "live." + name }

func histKey(name string, version int) string {
	return fmt.Sprintf("hist.%s.%010d", name, version)
}

// liveScript is a name's live version, compiled.
type liveScript struct {
	dep  Deployment
	prog *program
}

// deployments is this node's view of the live versions, kept current by a
// watch of the pointers.
type deployments struct {
	mu   sync.RWMutex
	live map[string]*liveScript
}

// Deploy checks req.Script and makes it the live version of req.Script.Name.
// Nothing changes if any file fails to compile or check (*CompileError, every
// problem listed) or, with CheckReplay, if a past run diverges
// (*ReplayCheckError).
func (n *Node) Deploy(ctx context.Context, req DeployRequest) (*Deployment, error) {
	s := req.Script
	if err := checkScriptName(s.Name); err != nil {
		return nil, err
	}
	if s.Main == "" && len(s.Files) == 1 {
		for name := range s.Files {
			s.Main = name
		}
	}
	prog, err := compileProgram(s, n.predeclared())
	var ce *CompileError
	if errors.As(err, &ce) || err == nil {
		extra := checkBundle(s, n.predeclared())
		if len(extra) > 0 {
			if ce == nil {
				ce = &CompileError{Script: s.Name}
			}
			ce.Errors = append(ce.Errors, extra...)
			sort.Strings(ce.Errors)
			return nil, ce
		}
	}
	if err != nil {
		return nil, err
	}
	replayed, err := n.checkReplay(ctx, s, req.CheckReplay)
	if err != nil {
		return nil, err
	}
	if err := n.storeScript(ctx, s, prog.hash); err != nil {
		return nil, err
	}
	n.programs.Store(prog.hash, prog)
	dep := Deployment{Name: s.Name, Hash: prog.hash, Main: s.Main, Files: sortedKeys(s.Files), By: req.By, Replayed: replayed}
	return n.publish(ctx, dep, prog)
}

// publish moves the name's pointer to dep, numbered after the live version,
// by compare-and-set, then writes dep's history entry. The pointer decides
// the version numbers, so two deploys racing for a name get consecutive
// versions; a history entry missing because its deploy stopped between the
// two writes is written by the next deploy of the name.
func (n *Node) publish(ctx context.Context, dep Deployment, prog *program) (*Deployment, error) {
	kv := n.bus.Bucket(bus.ScriptsBucket)
	for attempt := 0; ; attempt++ {
		data, rev, err := kv.Get(ctx, liveKey(dep.Name))
		prev := Deployment{}
		switch {
		case errors.Is(err, bus.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			if err := json.Unmarshal(data, &prev); err != nil {
				return nil, fmt.Errorf("engine: live pointer of %s is corrupt: %w", dep.Name, err)
			}
			if err := n.writeHistory(ctx, prev.Name, prev.Version, data); err != nil {
				return nil, err
			}
		}
		dep.Version, dep.At = prev.Version+1, time.Now().UTC()
		val, _ := encodeJSON(dep)
		if rev == 0 {
			_, err = kv.Create(ctx, liveKey(dep.Name), val)
		} else {
			_, err = kv.Update(ctx, liveKey(dep.Name), val, rev)
		}
		switch {
		case err == nil:
			if err := n.writeHistory(ctx, dep.Name, dep.Version, val); err != nil {
				return nil, err
			}
			n.setLive(&liveScript{dep: dep, prog: prog})
			n.log.Info().Str("script", dep.Name).Int("version", dep.Version).Str("hash", dep.Hash[:12]).Str("by", dep.By).Str("note", dep.Note).Msg("deployed")
			return &dep, nil
		case (errors.Is(err, bus.ErrConflict) || errors.Is(err, bus.ErrExists)) && attempt < 20:
			continue // another deploy of the name won the race: go after it
		default:
			return nil, fmt.Errorf("engine: deploy %s: %w", dep.Name, err)
		}
	}
}

// writeHistory writes a version's history entry unless it is there already.
func (n *Node) writeHistory(ctx context.Context, name string, version int, data []byte) error {
	_, err := n.bus.Bucket(bus.ScriptsBucket).Create(ctx, histKey(name, version), data)
	if err != nil && !errors.Is(err, bus.ErrExists) {
		return fmt.Errorf("engine: history of %s: %w", name, err)
	}
	return nil
}

// checkReplay replays the latest max finished runs of s.Name against s.
func (n *Node) checkReplay(ctx context.Context, s Script, max int) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	runs, err := n.List(ctx, ListFilter{Script: s.Name, Limit: 1000})
	if err != nil {
		return 0, err
	}
	check := &ReplayCheckError{Name: s.Name}
	for _, r := range runs {
		if check.Checked == max {
			break
		}
		if r.Status != StatusCompleted && r.Status != StatusFailed {
			continue
		}
		exp, err := n.Export(ctx, r.ID)
		if err != nil {
			return 0, err
		}
		check.Checked++
		if _, err := Replay(ctx, exp, ReplayOptions{Script: &s, Registry: n.opts.Registry, MaxExecSteps: n.opts.MaxExecSteps, PayloadLimit: n.opts.PayloadLimit}); err != nil {
			check.Divergent = append(check.Divergent, DivergentRun{Run: r.ID, Error: err.Error()})
		}
	}
	if len(check.Divergent) > 0 {
		return check.Checked, check
	}
	return check.Checked, nil
}

// Rollback makes an earlier version of name live again, as a new version
// (the history stays append-only). Version 0 means the version that was live
// before the current one.
func (n *Node) Rollback(ctx context.Context, name string, version int, by string) (*Deployment, error) {
	hist, err := n.History(ctx, name)
	if err != nil {
		return nil, err
	}
	cur := hist[len(hist)-1]
	var target *Deployment
	if version == 0 {
		for i := len(hist) - 2; i >= 0; i-- {
			if hist[i].Hash != cur.Hash {
				target = &hist[i]
				break
			}
		}
		if target == nil {
			return nil, fmt.Errorf("%w: %s has no earlier version to roll back to (ctl scripts history %s)", ErrBadInput, name, name)
		}
	} else {
		for i := range hist {
			if hist[i].Version == version {
				target = &hist[i]
			}
		}
		if target == nil {
			return nil, fmt.Errorf("%w: %s has no version %d; its versions are 1 to %d (ctl scripts history %s)", ErrBadInput, name, version, cur.Version, name)
		}
	}
	s, err := n.LoadScript(ctx, target.Hash)
	if err != nil {
		return nil, err
	}
	s.Name = name
	prog, err := n.compile(*s)
	if err != nil {
		return nil, err
	}
	dep := Deployment{Name: name, Hash: target.Hash, Main: target.Main, Files: target.Files, By: by, Note: "rollback to version " + strconv.Itoa(target.Version)}
	return n.publish(ctx, dep, prog)
}

// Scripts returns the live version of every deployed script, by name.
func (n *Node) Scripts(ctx context.Context) ([]Deployment, error) {
	entries, err := n.bus.Bucket(bus.ScriptsBucket).Values(ctx, "live.*")
	if err != nil {
		return nil, err
	}
	out := make([]Deployment, 0, len(entries))
	for _, e := range entries {
		var d Deployment
		if json.Unmarshal(e.Value, &d) == nil {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// History returns every version of name, oldest first.
func (n *Node) History(ctx context.Context, name string) ([]Deployment, error) {
	if err := checkScriptName(name); err != nil {
		return nil, err
	}
	entries, err := n.bus.Bucket(bus.ScriptsBucket).Values(ctx, "hist."+name+".*")
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w %q: deploy it first (ctl deploy %s PATH)", ErrUnknownScript, name, name)
	}
	out := make([]Deployment, 0, len(entries))
	for _, e := range entries {
		var d Deployment
		if json.Unmarshal(e.Value, &d) == nil {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// ScriptSource returns the live version of name with its sources.
func (n *Node) ScriptSource(ctx context.Context, name string) (*ScriptVersion, error) {
	ls, err := n.deployed(ctx, name)
	if err != nil {
		return nil, err
	}
	return &ScriptVersion{Deployment: ls.dep, Sources: ls.prog.script.Files}, nil
}

// deployed returns the live version of name: from this node's view, or read
// from the bucket when the watch has not brought it yet.
func (n *Node) deployed(ctx context.Context, name string) (*liveScript, error) {
	n.deps.mu.RLock()
	ls := n.deps.live[name]
	n.deps.mu.RUnlock()
	if ls != nil {
		return ls, nil
	}
	if err := checkScriptName(name); err != nil {
		return nil, fmt.Errorf("%w %q: deploy it first (ctl deploy NAME PATH)", ErrUnknownScript, name)
	}
	data, _, err := n.bus.Bucket(bus.ScriptsBucket).Get(ctx, liveKey(name))
	if errors.Is(err, bus.ErrNotFound) {
		return nil, fmt.Errorf("%w %q: deploy it first (ctl deploy %s PATH), or run a file (ctl run FILE.star)", ErrUnknownScript, name, name)
	}
	if err != nil {
		return nil, err
	}
	return n.loadLive(ctx, data)
}

// loadLive compiles the version a pointer value names and makes it this
// node's live version of the name, unless a newer one is already there.
func (n *Node) loadLive(ctx context.Context, data []byte) (*liveScript, error) {
	var dep Deployment
	if err := json.Unmarshal(data, &dep); err != nil {
		return nil, fmt.Errorf("engine: live pointer is corrupt: %w", err)
	}
	var prog *program
	if p, ok := n.programs.Load(dep.Hash); ok {
		prog = p.(*program)
	} else {
		s, err := n.LoadScript(ctx, dep.Hash)
		if err != nil {
			return nil, err
		}
		s.Name = dep.Name
		if prog, err = n.compile(*s); err != nil {
			return nil, err
		}
	}
	return n.setLive(&liveScript{dep: dep, prog: prog}), nil
}

// setLive installs ls unless this node already has a newer version of the
// name, and returns the one in place.
func (n *Node) setLive(ls *liveScript) *liveScript {
	n.deps.mu.Lock()
	defer n.deps.mu.Unlock()
	if n.deps.live == nil {
		n.deps.live = map[string]*liveScript{}
	}
	if cur := n.deps.live[ls.dep.Name]; cur != nil && cur.dep.Version > ls.dep.Version {
		return cur
	}
	n.deps.live[ls.dep.Name] = ls
	return ls
}

// watchDeployments keeps this node's live versions current until ctx ends:
// a deploy through any node reaches this one within milliseconds.
func (n *Node) watchDeployments(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := n.bus.Bucket(bus.ScriptsBucket).Watch(ctx, "live.*")
		if err == nil {
			for e := range ch {
				if e.Value == nil {
					continue
				}
				n.loadLiveRetrying(ctx, e.Key, e.Value)
			}
		} else if ctx.Err() == nil {
			n.log.Warn().Err(err).Msg("watch deployments; retrying")
		}
		t := time.NewTimer(time.Second)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// loadLiveRetrying is loadLive for the watch: a replica may not hold the
// version's sources yet when the pointer arrives, so it tries again for a
// while rather than miss the version.
func (n *Node) loadLiveRetrying(ctx context.Context, key string, value []byte) {
	deadline := time.Now().Add(30 * time.Second)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := n.loadLive(lctx, value)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			n.log.Error().Err(err).Str("key", key).Msg("load deployed script; new runs keep the previous version here")
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
