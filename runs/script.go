package runs

import (
	"context"
	"slices"

	"github.com/droverhq/drover/api"
)

// RunScript returns the script version run id ran on, with its sources (from
// its pinned copy when its journal has expired).
func (s *Store) RunScript(ctx context.Context, id string) (*api.ScriptVersion, error) {
	rec, err := s.Record(ctx, id)
	var script *api.Script
	if err == nil {
		script, err = s.opts.Scripts.Load(ctx, rec.Hash)
	}
	if err != nil {
		exp, perr := s.pinned(ctx, id)
		if perr != nil {
			return nil, err
		}
		rec, script = &exp.Run, &exp.Script
	}
	files := make([]string, 0, len(script.Files))
	for name := range script.Files {
		files = append(files, name)
	}
	slices.Sort(files)
	dep := api.Deployment{Name: rec.Script, Version: rec.Version, Hash: rec.Hash, Main: script.Main, Files: files}
	return &api.ScriptVersion{Deployment: dep, Sources: script.Files}, nil
}
