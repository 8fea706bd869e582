package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/replay"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
)

// Runs is what a deploy reads of past runs to check that they still replay
// (package runs' Store implements it).
type Runs interface {
	List(ctx context.Context, f api.ListFilter) ([]api.Run, error)
	Export(ctx context.Context, id string) (*api.Export, error)
}

// Options configures a Deployer.
type Options struct {
	// Bus holds the scripts bucket.
	Bus *bus.Bus
	// Store keeps the versions' sources.
	Store *Store
	// Compiler compiles versions and caches them.
	Compiler *script.Compiler
	// Runs are replayed by a deploy with CheckReplay.
	Runs Runs
	// Registry, MaxExecSteps and PayloadLimit are the replays' (see
	// replay.Options).
	Registry     *builtins.Registry
	MaxExecSteps uint64
	PayloadLimit int
	// Logger receives deploys and watch failures (default: none).
	Logger *zerolog.Logger
}

// Live is a name's live version, compiled.
type Live struct {
	Deployment api.Deployment
	Program    *script.Program
}

// Deployer deploys and rolls back script versions and keeps this node's view
// of the live ones. It is safe for concurrent use.
type Deployer struct {
	opts Options
	kv   *bus.KV
	log  zerolog.Logger

	mu   sync.RWMutex
	live map[string]*Live
}

// NewDeployer returns a deployer of the scripts kept on opts.Bus.
func NewDeployer(opts Options) *Deployer {
	d := &Deployer{opts: opts, kv: opts.Bus.Bucket(bus.ScriptsBucket), log: zerolog.Nop(), live: map[string]*Live{}}
	if opts.Logger != nil {
		d.log = *opts.Logger
	}
	return d
}

func liveKey(name string) string { return "live." + name }

func histKey(name string, version int) string {
	return fmt.Sprintf("hist.%s.%010d", name, version)
}

// Deploy checks req.Script and makes it the live version of req.Script.Name.
// Nothing changes if any file fails to compile or check (*api.CompileError,
// every problem listed) or, with CheckReplay, if a past run diverges
// (*api.ReplayCheckError).
func (d *Deployer) Deploy(ctx context.Context, req api.DeployRequest) (*api.Deployment, error) {
	s := req.Script
	if err := api.CheckScriptName(s.Name); err != nil {
		return nil, err
	}
	if s.Main == "" && len(s.Files) == 1 {
		for name := range s.Files {
			s.Main = name
		}
	}
	prog, err := d.opts.Compiler.Compile(s)
	var ce *api.CompileError
	if errors.As(err, &ce) || err == nil {
		if extra := lint(s, d.opts.Compiler.Globals()); len(extra) > 0 {
			if ce == nil {
				ce = &api.CompileError{Script: s.Name}
			}
			ce.Errors = append(ce.Errors, extra...)
			sort.Strings(ce.Errors)
			return nil, ce
		}
	}
	if err != nil {
		return nil, err
	}
	replayed, err := d.checkReplay(ctx, s, req.CheckReplay)
	if err != nil {
		return nil, err
	}
	if err := d.opts.Store.Save(ctx, s, prog.Hash); err != nil {
		return nil, err
	}
	dep := api.Deployment{Name: s.Name, Hash: prog.Hash, Main: s.Main, Files: sortedKeys(s.Files), By: req.By, Replayed: replayed}
	return d.publish(ctx, dep, prog)
}

// publish moves the name's pointer to dep, numbered after the live version,
// by compare-and-set, then writes dep's history entry. The pointer decides
// the version numbers, so two deploys racing for a name get consecutive
// versions; a history entry missing because its deploy stopped between the
// two writes is written by the next deploy of the name.
func (d *Deployer) publish(ctx context.Context, dep api.Deployment, prog *script.Program) (*api.Deployment, error) {
	for attempt := 0; ; attempt++ {
		data, rev, err := d.kv.Get(ctx, liveKey(dep.Name))
		prev := api.Deployment{}
		switch {
		case errors.Is(err, bus.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			if err := json.Unmarshal(data, &prev); err != nil {
				return nil, fmt.Errorf("deploy: live pointer of %s is corrupt: %w", dep.Name, err)
			}
			if err := d.writeHistory(ctx, prev.Name, prev.Version, data); err != nil {
				return nil, err
			}
		}
		dep.Version, dep.At = prev.Version+1, time.Now().UTC()
		val, _ := api.EncodeJSON(dep)
		if rev == 0 {
			_, err = d.kv.Create(ctx, liveKey(dep.Name), val)
		} else {
			_, err = d.kv.Update(ctx, liveKey(dep.Name), val, rev)
		}
		switch {
		case err == nil:
			if err := d.writeHistory(ctx, dep.Name, dep.Version, val); err != nil {
				return nil, err
			}
			d.setLive(&Live{Deployment: dep, Program: prog})
			d.log.Info().Str("script", dep.Name).Int("version", dep.Version).Str("hash", dep.Hash[:12]).Str("by", dep.By).Str("note", dep.Note).Msg("deployed")
			return &dep, nil
		case (errors.Is(err, bus.ErrConflict) || errors.Is(err, bus.ErrExists)) && attempt < 20:
			continue // another deploy of the name won the race: go after it
		default:
			return nil, fmt.Errorf("deploy: %s: %w", dep.Name, err)
		}
	}
}

// writeHistory writes a version's history entry unless it is there already.
func (d *Deployer) writeHistory(ctx context.Context, name string, version int, data []byte) error {
	_, err := d.kv.Create(ctx, histKey(name, version), data)
	if err != nil && !errors.Is(err, bus.ErrExists) {
		return fmt.Errorf("deploy: history of %s: %w", name, err)
	}
	return nil
}

// checkReplay replays the latest max finished runs of s.Name against s.
func (d *Deployer) checkReplay(ctx context.Context, s api.Script, max int) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	runs, err := d.opts.Runs.List(ctx, api.ListFilter{Script: s.Name, Limit: 1000})
	if err != nil {
		return 0, err
	}
	check := &api.ReplayCheckError{Name: s.Name}
	for _, r := range runs {
		if check.Checked == max {
			break
		}
		if r.Status != api.StatusCompleted && r.Status != api.StatusFailed {
			continue
		}
		exp, err := d.opts.Runs.Export(ctx, r.ID)
		if err != nil {
			return 0, err
		}
		check.Checked++
		opts := replay.Options{Script: &s, Registry: d.opts.Registry, MaxExecSteps: d.opts.MaxExecSteps, PayloadLimit: d.opts.PayloadLimit}
		if _, err := replay.Replay(ctx, exp, opts); err != nil {
			check.Divergent = append(check.Divergent, api.DivergentRun{Run: r.ID, Error: err.Error()})
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
func (d *Deployer) Rollback(ctx context.Context, name string, version int, by string) (*api.Deployment, error) {
	hist, err := d.History(ctx, name)
	if err != nil {
		return nil, err
	}
	cur := hist[len(hist)-1]
	var target *api.Deployment
	if version == 0 {
		for i := len(hist) - 2; i >= 0; i-- {
			if hist[i].Hash != cur.Hash {
				target = &hist[i]
				break
			}
		}
		if target == nil {
			return nil, fmt.Errorf("%w: %s has no earlier version to roll back to (ctl scripts history %s)", api.ErrBadInput, name, name)
		}
	} else {
		for i := range hist {
			if hist[i].Version == version {
				target = &hist[i]
			}
		}
		if target == nil {
			return nil, fmt.Errorf("%w: %s has no version %d; its versions are 1 to %d (ctl scripts history %s)", api.ErrBadInput, name, version, cur.Version, name)
		}
	}
	s, err := d.opts.Store.Load(ctx, target.Hash)
	if err != nil {
		return nil, err
	}
	s.Name = name
	prog, err := d.opts.Compiler.Compile(*s)
	if err != nil {
		return nil, err
	}
	dep := api.Deployment{Name: name, Hash: target.Hash, Main: target.Main, Files: target.Files, By: by, Note: "rollback to version " + strconv.Itoa(target.Version)}
	return d.publish(ctx, dep, prog)
}

// Scripts returns the live version of every deployed script, by name.
func (d *Deployer) Scripts(ctx context.Context) ([]api.Deployment, error) {
	entries, err := d.kv.Values(ctx, "live.*")
	if err != nil {
		return nil, err
	}
	return decodeDeployments(entries), nil
}

// History returns every version of name, oldest first.
func (d *Deployer) History(ctx context.Context, name string) ([]api.Deployment, error) {
	if err := api.CheckScriptName(name); err != nil {
		return nil, err
	}
	entries, err := d.kv.Values(ctx, "hist."+name+".*")
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w %q: deploy it first (ctl deploy %s PATH)", api.ErrUnknownScript, name, name)
	}
	out := decodeDeployments(entries)
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// decodeDeployments decodes pointer or history values, sorted by name,
// skipping any that is corrupt.
func decodeDeployments(entries []bus.Entry) []api.Deployment {
	out := make([]api.Deployment, 0, len(entries))
	for _, e := range entries {
		var dep api.Deployment
		if json.Unmarshal(e.Value, &dep) == nil {
			out = append(out, dep)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ScriptSource returns the live version of name with its sources.
func (d *Deployer) ScriptSource(ctx context.Context, name string) (*api.ScriptVersion, error) {
	ls, err := d.Live(ctx, name)
	if err != nil {
		return nil, err
	}
	return &api.ScriptVersion{Deployment: ls.Deployment, Sources: ls.Program.Script.Files}, nil
}

// Live returns the live version of name: from this node's view, or read from
// the bucket when the watch has not brought it yet. An error wraps
// api.ErrUnknownScript for a name never deployed.
func (d *Deployer) Live(ctx context.Context, name string) (*Live, error) {
	if ls := d.Current(name); ls != nil {
		return ls, nil
	}
	if err := api.CheckScriptName(name); err != nil {
		return nil, fmt.Errorf("%w %q: deploy it first (ctl deploy NAME PATH)", api.ErrUnknownScript, name)
	}
	data, _, err := d.kv.Get(ctx, liveKey(name))
	if errors.Is(err, bus.ErrNotFound) {
		return nil, fmt.Errorf("%w %q: deploy it first (ctl deploy %s PATH), or run a file (ctl run FILE.star)", api.ErrUnknownScript, name, name)
	}
	if err != nil {
		return nil, err
	}
	return d.loadLive(ctx, data)
}

// Current returns the live version of name in this node's view, as the
// watch (or a deploy through this node) brought it, or nil.
func (d *Deployer) Current(name string) *Live {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.live[name]
}

// loadLive compiles the version a pointer value names and makes it this
// node's live version of the name, unless a newer one is already there.
func (d *Deployer) loadLive(ctx context.Context, data []byte) (*Live, error) {
	var dep api.Deployment
	if err := json.Unmarshal(data, &dep); err != nil {
		return nil, fmt.Errorf("deploy: live pointer is corrupt: %w", err)
	}
	prog := d.opts.Compiler.Cached(dep.Hash)
	if prog == nil {
		s, err := d.opts.Store.Load(ctx, dep.Hash)
		if err != nil {
			return nil, err
		}
		s.Name = dep.Name
		if prog, err = d.opts.Compiler.Compile(*s); err != nil {
			return nil, err
		}
	}
	return d.setLive(&Live{Deployment: dep, Program: prog}), nil
}

// setLive installs ls unless this node already has a newer version of the
// name, and returns the one in place.
func (d *Deployer) setLive(ls *Live) *Live {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur := d.live[ls.Deployment.Name]; cur != nil && cur.Deployment.Version > ls.Deployment.Version {
		return cur
	}
	d.live[ls.Deployment.Name] = ls
	return ls
}

// Watch keeps this node's live versions current until ctx ends: a deploy
// through any node reaches this one within milliseconds.
func (d *Deployer) Watch(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := d.kv.Watch(ctx, "live.*")
		if err == nil {
			for e := range ch {
				if e.Value == nil {
					continue
				}
				d.loadLiveRetrying(ctx, e.Key, e.Value)
			}
		} else if ctx.Err() == nil {
			d.log.Warn().Err(err).Msg("watch deployments; retrying")
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
func (d *Deployer) loadLiveRetrying(ctx context.Context, key string, value []byte) {
	deadline := time.Now().Add(30 * time.Second)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := d.loadLive(lctx, value)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			d.log.Error().Err(err).Str("key", key).Msg("load deployed script; new runs keep the previous version here")
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

// ScriptVersion returns version of name with its sources; an error wraps
// api.ErrUnknownScript for a name never deployed, api.ErrBadInput for a
// version it does not have.
func (d *Deployer) ScriptVersion(ctx context.Context, name string, version int) (*api.ScriptVersion, error) {
	hist, err := d.History(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, dep := range hist {
		if dep.Version == version {
			s, err := d.opts.Store.Load(ctx, dep.Hash)
			if err != nil {
				return nil, err
			}
			return &api.ScriptVersion{Deployment: dep, Sources: s.Files}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s has no version %d; its versions are 1 to %d (ctl scripts history %s)", api.ErrBadInput, name, version, hist[len(hist)-1].Version, name)
}

// ReplayCheck replays run id against s, or with s nil against the live
// version of its script (its own version if the script was never
// deployed), executing nothing: the replay check of the control panel. A
// divergence is in the report (Divergence, Message), not an error; a script
// that does not compile is.
func (d *Deployer) ReplayCheck(ctx context.Context, id string, s *api.Script) (*api.ReplayReport, error) {
	exp, err := d.opts.Runs.Export(ctx, id)
	if err != nil {
		return nil, err
	}
	against := "pasted script"
	if s == nil {
		ls, err := d.Live(ctx, exp.Run.Script)
		switch {
		case errors.Is(err, api.ErrUnknownScript):
			against = "its own version"
		case err != nil:
			return nil, err
		default:
			live := ls.Program.Script
			s, against = &live, fmt.Sprintf("live version %d", ls.Deployment.Version)
		}
	} else {
		pasted := *s
		pasted.Name = exp.Run.Script
		if pasted.Main == "" || pasted.Files[pasted.Main] == "" {
			return nil, fmt.Errorf("%w: the script to replay against has no main file: give main and files {main: source}", api.ErrBadInput)
		}
		s = &pasted
	}
	rep, err := replay.Replay(ctx, exp, replay.Options{Script: s, Registry: d.opts.Registry, MaxExecSteps: d.opts.MaxExecSteps, PayloadLimit: d.opts.PayloadLimit})
	var de *api.DivergenceError
	if errors.As(err, &de) && rep != nil {
		rep.Message, err = de.Error(), nil
	}
	if err != nil {
		return nil, err
	}
	rep.Against = against
	return rep, nil
}
