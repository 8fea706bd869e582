package cli

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func (a *app) deployCommand() *cobra.Command {
	var (
		main        string
		by          string
		checkReplay int
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "deploy NAME PATH",
		Short: "Check a script or bundle and make it the live version of NAME",
		Long: `Deploy PATH as the live version of the script NAME.

PATH is a .star file, or a folder of them (a bundle: every *.star file under
it, named by its path relative to the folder, e.g. lib/util.star, so that
files load() each other). The main file is --main, else main.star, else
NAME.star, else the only file.

Before anything changes, every file is compiled and checked: syntax, unknown
names and builtins, load() of files the bundle lacks, load cycles, and a
main function. Every problem is listed and the live version stays. With
--check-replay N, the latest N finished runs of NAME are replayed against
the new version, and the deploy is refused (exit 3) if any diverges.

Every node uses the new version for runs started after the deploy; runs in
flight finish on the version they started with.`,
		Example: `  ctl deploy checkout scripts/checkout/
  ctl deploy hello scripts/examples/hello.star
  ctl deploy checkout scripts/checkout/ --check-replay 50`,
		Args: wantArgs("NAME", "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			script, err := readBundle(args[0], args[1], main)
			if err != nil {
				return err
			}
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			dep, err := c.Deploy(cmd.Context(), api.DeployRequest{Script: script, By: cmp.Or(by, a.whoami()), CheckReplay: checkReplay})
			var ce *api.CompileError
			switch {
			case errors.As(err, &ce):
				fmt.Fprintf(a.stderr, "deploy of %s refused; the live version is unchanged:\n", args[0])
				return a.compileFailure(ce)
			case errors.Is(err, api.ErrReplayDiverged):
				fmt.Fprintln(a.stderr, err)
				return silent(ExitDiverged)
			case errors.Is(err, api.ErrBadInput):
				return &exitError{code: ExitUsage, err: err}
			case err != nil:
				return failure(err)
			}
			if asJSON {
				return writeValue(a.stdout, dep)
			}
			fmt.Fprintf(a.stdout, "deployed %s version %d (%s, %d files)", dep.Name, dep.Version, dep.Hash[:12], len(dep.Files))
			if dep.Replayed > 0 {
				fmt.Fprintf(a.stdout, "; %d past runs replay", dep.Replayed)
			}
			fmt.Fprintln(a.stdout)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&main, "main", "", "the bundle's main `FILE` (default main.star, else NAME.star, else the only file)")
	f.StringVar(&by, "by", "", "who deploys, for the history (default $USER@host)")
	f.IntVar(&checkReplay, "check-replay", 0, "replay the latest `N` finished runs of NAME against the new version first; refuse the deploy if any diverges")
	f.BoolVar(&asJSON, "json", false, "print the deployment as JSON")
	return cmd
}

func (a *app) rollbackCommand() *cobra.Command {
	var (
		by     string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "rollback NAME [VERSION]",
		Short: "Make an earlier version of a script live again",
		Long: `Make VERSION of the script NAME live again, or, without VERSION, the version
that was live before the current one. The rollback is recorded as a new
version (the history only grows); runs in flight keep their version. With
--json, the new deployment is printed as JSON.`,
		Example: `  ctl rollback checkout
  ctl rollback checkout 3`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || len(args) > 2 {
				return wantArgs("NAME", "[VERSION]")(cmd, args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			version := 0
			if len(args) == 2 {
				v, err := strconv.Atoi(args[1])
				if err != nil || v < 1 {
					return usageErrorf("VERSION %q is not a version number (see ctl scripts history %s)", args[1], args[0])
				}
				version = v
			}
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			dep, err := c.Rollback(cmd.Context(), args[0], version, cmp.Or(by, a.whoami()))
			if err != nil {
				return scriptFailure(err)
			}
			if asJSON {
				return writeValue(a.stdout, dep)
			}
			fmt.Fprintf(a.stdout, "%s version %d is live: %s (%s)\n", dep.Name, dep.Version, dep.Note, dep.Hash[:12])
			return nil
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "who rolls back, for the history (default $USER@host)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the deployment as JSON")
	return cmd
}

func (a *app) scriptsCommand() *cobra.Command {
	scripts := &cobra.Command{
		Use:   "scripts",
		Short: "List deployed scripts and their history",
		Args:  noSubcommand,
		RunE:  helpWhenBare,
	}
	var asJSON bool
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List deployed scripts with their live version",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			deps, err := c.Scripts(cmd.Context())
			if err != nil {
				return failure(err)
			}
			if asJSON {
				if deps == nil {
					deps = []api.Deployment{}
				}
				return writeValue(a.stdout, deps)
			}
			if len(deps) == 0 {
				fmt.Fprintln(a.stderr, "no scripts deployed (ctl deploy NAME PATH)")
				return nil
			}
			return writeDeployments(a, deps, true)
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print the scripts as a JSON array")
	var histJSON bool
	history := &cobra.Command{
		Use:   "history NAME",
		Short: "Show every version of a script: version, hash, when, who",
		Args:  wantArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			hist, err := c.History(cmd.Context(), args[0])
			if err != nil {
				return scriptFailure(err)
			}
			if histJSON {
				return writeValue(a.stdout, hist)
			}
			return writeDeployments(a, hist, false)
		},
	}
	history.Flags().BoolVar(&histJSON, "json", false, "print the history as a JSON array")
	scripts.AddCommand(ls, history)
	return scripts
}

// writeDeployments prints deployments as a table; the live one of a history
// is the last.
func writeDeployments(a *app, deps []api.Deployment, names bool) error {
	tw := newTable(a.stdout)
	if names {
		row(tw, "NAME", "VERSION", "HASH", "DEPLOYED", "BY", "FILES")
	} else {
		row(tw, "VERSION", "HASH", "DEPLOYED", "BY", "NOTE")
	}
	for i, d := range deps {
		when := d.At.In(time.Local).Format("2006-01-02 15:04:05")
		if names {
			row(tw, d.Name, strconv.Itoa(d.Version), d.Hash[:12], when, orDash(d.By), strings.Join(d.Files, ","))
			continue
		}
		note := d.Note
		if i == len(deps)-1 {
			note = strings.TrimSpace("live " + note)
		}
		row(tw, strconv.Itoa(d.Version), d.Hash[:12], when, orDash(d.By), orDash(note))
	}
	return tw.Flush()
}

// scriptFailure maps a script lookup's error to an exit code.
func scriptFailure(err error) error {
	if errors.Is(err, api.ErrBadInput) {
		return &exitError{code: ExitUsage, err: err}
	}
	return failure(err)
}

// readBundle reads a .star file, or every *.star file under a folder, as the
// script name.
func readBundle(name, path, main string) (api.Script, error) {
	info, err := os.Stat(path)
	if err != nil {
		return api.Script{}, failure(err)
	}
	s := api.Script{Name: name, Files: map[string]string{}}
	if !info.IsDir() {
		if !strings.HasSuffix(path, ".star") {
			return s, usageErrorf("%s is not a .star file or a folder of them", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return s, failure(err)
		}
		s.Main = filepath.Base(path)
		s.Files[s.Main] = string(data)
		if main != "" && main != s.Main {
			return s, usageErrorf("--main %s: PATH is the single file %s", main, s.Main)
		}
		return s, nil
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != path && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".star") {
			return nil
		}
		rel, err := filepath.Rel(path, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s.Files[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		return s, failure(err)
	}
	if len(s.Files) == 0 {
		return s, usageErrorf("%s holds no .star files", path)
	}
	names := make([]string, 0, len(s.Files))
	for f := range s.Files {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, candidate := range []string{main, "main.star", name + ".star"} {
		if candidate == "" {
			continue
		}
		if _, ok := s.Files[candidate]; ok {
			s.Main = candidate
			return s, nil
		}
		if candidate == main {
			return s, usageErrorf("--main %s: the bundle has no such file (its files: %s)", main, strings.Join(names, ", "))
		}
	}
	if len(names) == 1 {
		s.Main = names[0]
		return s, nil
	}
	return s, usageErrorf("which file of %s is the main one? name it main.star or %s.star, or pass --main (its files: %s)", path, name, strings.Join(names, ", "))
}
