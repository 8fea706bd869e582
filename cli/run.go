package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func (a *app) runCommand() *cobra.Command {
	var (
		input  string
		attrs  []string
		detach bool
		name   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "run FILE.star | NAME",
		Short: "Run a script and print its result",
		Long: `Run FILE.star's main(input), or the live version of the deployed script
NAME (see ctl deploy), and wait for its end.

The run id goes to stderr. When the run completes, its result is printed on
stdout as JSON; when it fails, the error and the Starlark backtrace go to
stderr and ctl exits 1 (4 if the run was cancelled).

The script is FILE alone, unless its source calls load(): then every *.star
file of FILE's directory is part of the script, under its base name.

With --json, the run's record (status, result or error with its backtrace,
times, attributes) is printed on stdout instead, whatever the outcome; with
--detach, the record as the run started. The exit code is the same.`,
		Example: `  ctl run hello.star
  ctl run checkout --input '{"customer":"acme"}'     # the deployed version
  ctl run checkout.star --input '{"customer":"acme","skus":["a","b"]}' --attr env=dev
  ctl run checkout.star --input @order.json
  ctl --server http://127.0.0.1:8080 run checkout.star --detach
  ctl run checkout.star --json | jq .status`,
		Args: wantArgs("FILE.star|NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := readInput(input, a.stdin)
			if err != nil {
				return err
			}
			at, err := parseAttrs(attrs)
			if err != nil {
				return err
			}
			if detach && a.serverURL() == "" {
				if idle, err := a.backgroundIdle(); err != nil {
					return err
				} else if idle == 0 {
					return usageErrorf("--detach needs a node that outlives ctl: the embedded node of --background off or --verbose stops when ctl exits, and its runs with it; leave the background node on, or pass --server URL")
				}
			}
			var script api.Script
			if deployedName(args[0]) {
				script = api.Script{Name: args[0]}
			} else if script, err = readScript(args[0], name); err != nil {
				return err
			}
			return a.run(cmd.Context(), api.StartRequest{Script: script, Input: in, Attrs: at}, detach, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "the run's input: `JSON` text, @FILE.json, or @- for stdin (default null)")
	f.StringArrayVar(&attrs, "attr", nil, "attribute of the run as `name=value` (repeatable)")
	f.BoolVar(&detach, "detach", false, "print the run id on stdout and return without waiting (needs --server or the background node)")
	f.StringVar(&name, "name", "", "`NAME` of the script (default: FILE's base name without .star)")
	f.BoolVar(&asJSON, "json", false, "print the run's record as JSON instead of its result (the exit code is the same)")
	return cmd
}

// run starts req and, unless detach, waits for its end and reports it: as
// JSON records with asJSON.
func (a *app) run(ctx context.Context, req api.StartRequest, detach, asJSON bool) error {
	c, err := a.connect(ctx, withRecovery)
	if err != nil {
		return err
	}
	defer c.close()
	r, err := c.Start(ctx, req)
	var ce *api.CompileError
	switch {
	case errors.As(err, &ce):
		return a.compileFailure(ce)
	case errors.Is(err, api.ErrBadInput):
		return &exitError{code: ExitUsage, err: err}
	case err != nil:
		return failure(err)
	}
	switch {
	case detach && asJSON:
		return writeValue(a.stdout, r)
	case detach:
		fmt.Fprintln(a.stdout, r.ID)
		return nil
	}
	fmt.Fprintf(a.stderr, "run %s\n", r.ID)
	end, err := c.Wait(ctx, r.ID)
	if err != nil {
		return a.waitError(ctx, c, r.ID, err)
	}
	return a.reportRun(end, asJSON)
}

// reportRun reports how run r ended and returns its exit code: with asJSON
// its record on stdout; else its result on stdout, or what went wrong on
// stderr.
func (a *app) reportRun(r *api.Run, asJSON bool) error {
	switch {
	case asJSON:
		if err := writeValue(a.stdout, r); err != nil {
			return err
		}
		return endExit(r)
	case r.Status == api.StatusCompleted:
		return writeJSON(a.stdout, r.Result)
	}
	return a.reportEnd(r)
}

// endExit ends a command with the exit code of how run r ended: 0 completed,
// 4 cancelled, 1 otherwise (failed, blocked).
func endExit(r *api.Run) error {
	switch r.Status {
	case api.StatusCompleted:
		return nil
	case api.StatusCancelled:
		return silent(ExitCancelled)
	}
	return silent(ExitFailure)
}

// waitError explains why waiting for run id stopped.
func (a *app) waitError(ctx context.Context, c *conn, id string, err error) error {
	if ctx.Err() == nil {
		return failure(err)
	}
	if c.embedded {
		fmt.Fprintf(a.stderr, "ctl: interrupted; run %s stops with the embedded node, its journal is kept\n", id)
	} else {
		fmt.Fprintf(a.stderr, "ctl: interrupted; run %s goes on (ctl runs wait %s)\n", id, id)
	}
	return silent(ExitInterrupted)
}

// reportEnd prints how an unsuccessful run ended on stderr and returns its exit
// code: failed (message then backtrace), blocked (message then what to do) or
// cancelled.
func (a *app) reportEnd(r *api.Run) error {
	switch r.Status {
	case api.StatusCompleted:
		return nil
	case api.StatusCancelled:
		if r.Error != nil {
			fmt.Fprintf(a.stderr, "run %s cancelled: %s\n", r.ID, r.Error.Message)
		} else {
			fmt.Fprintf(a.stderr, "run %s cancelled\n", r.ID)
		}
		return endExit(r)
	}
	msg := "no error recorded"
	if r.Error != nil {
		msg = r.Error.Message
	}
	fmt.Fprintf(a.stderr, "run %s %s: %s\n", r.ID, r.Status, msg)
	if r.Status == api.StatusBlocked {
		fmt.Fprintln(a.stderr, blockedHint(r.ID))
	} else if r.Error != nil && r.Error.Backtrace != "" {
		fmt.Fprintln(a.stderr, strings.TrimRight(r.Error.Backtrace, "\n"))
	}
	return endExit(r)
}

// blockedHint says how to continue a blocked run.
func blockedHint(id string) string {
	return "fix the script or the node and run: ctl runs resume " + id + " [--script fixed.star]"
}

// deployedName reports whether ctl run's argument names a deployed script
// rather than a file: no .star suffix, no path separator, and no such file.
func deployedName(arg string) bool {
	if strings.HasSuffix(arg, ".star") || strings.ContainsRune(arg, os.PathSeparator) {
		return false
	}
	_, err := os.Stat(arg)
	return err != nil
}

// readScript reads FILE and, if it calls load(), the other *.star files of its
// directory.
func readScript(file, name string) (api.Script, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return api.Script{}, failure(err)
	}
	base := filepath.Base(file)
	if name == "" {
		name = strings.TrimSuffix(base, ".star")
	}
	s := api.Script{Name: name, Main: base, Files: map[string]string{base: string(src)}}
	if !strings.Contains(string(src), "load(") {
		return s, nil
	}
	dir := filepath.Dir(file)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return s, failure(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".star") || e.Name() == base {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return s, failure(err)
		}
		s.Files[e.Name()] = string(data)
	}
	return s, nil
}

// readInput reads --input: JSON text, @path, or @- for stdin; "" means null.
func readInput(spec string, stdin io.Reader) (json.RawMessage, error) {
	if spec == "" {
		return nil, nil
	}
	data := []byte(spec)
	if path, ok := strings.CutPrefix(spec, "@"); ok {
		var err error
		if path == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, usageErrorf("--input: %v", err)
		}
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, usageErrorf("--input is not JSON: %v", err)
	}
	return data, nil
}

// parseAttrs reads name=value pairs.
func parseAttrs(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--attr %q: want name=value", p)
		}
		m[k] = v
	}
	return m, nil
}

// compileFailure prints every compile error, one file:line:col: message per
// line as a compiler does, and exits 1.
func (a *app) compileFailure(ce *api.CompileError) error {
	for _, line := range ce.Errors {
		fmt.Fprintln(a.stderr, line)
	}
	return silent(ExitFailure)
}
