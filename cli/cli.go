// Package cli implements Drover's two command lines. ctl (Main) runs a
// script, and inspects, replays, exports, cancels, pins and resumes runs,
// against a node's HTTP API (--server, DROVER_URL) or an embedded node
// started in-process on a local data dir. engine (EngineMain) runs a node.
// Both share their flag style, environment (DROVER_DATA), error and exit code
// conventions, and --version.
//
// Every ctl command works through api.API, so both modes behave the same.
// cmd/ctl only calls Main and cmd/engine EngineMain; docs/cli.md and
// docs/operations.md are the user's reference.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/script"
)

// Exit codes of Main.
const (
	// ExitOK: the command succeeded (for run and runs wait: the run completed).
	ExitOK = 0
	// ExitFailure: the run failed, the script does not compile, or the command
	// could not do its work (unknown run, unreachable server, data dir in use).
	ExitFailure = 1
	// ExitUsage: the command line is wrong (unknown command or flag, missing or
	// extra arguments, a bad flag value, --input that is not JSON).
	ExitUsage = 2
	// ExitDiverged: a replay did not reproduce the original run: the script
	// made other calls than the journal holds, or ended differently.
	ExitDiverged = 3
	// ExitCancelled: the run was cancelled.
	ExitCancelled = 4
	// ExitInterrupted: ctl was interrupted (SIGINT, SIGTERM) before the run
	// ended: 128 + SIGINT, as shells report it.
	ExitInterrupted = 130
)

// Main runs ctl with args (without the program name) and returns the exit code.
// Results go to stdout; run ids, progress and errors go to stderr.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return MainContext(context.Background(), args, stdin, stdout, stderr)
}

// MainContext is Main under ctx: when ctx ends, ctl stops as when
// interrupted (SIGINT, SIGTERM), which it also is.
func MainContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, &app{stdin: stdin, stdout: stdout, stderr: &lockedWriter{w: stderr}, getenv: os.Getenv, canBackground: true})
}

// app is one invocation of ctl: its streams, environment and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	server  string
	dataDir string
	verbose bool
	// maxSteps is --max-exec-steps; 0 means the engine's default.
	maxSteps uint64
	// sync is --sync of the embedded node; syncSet says it was given.
	sync    bus.SyncPolicy
	syncSet bool
	// background is --background (0: off); backgroundSet says it was given.
	background    time.Duration
	backgroundSet bool
	// canBackground is true in the ctl binary, which can start itself as a
	// background node; tests run commands in-process instead.
	canBackground bool

	// dial, when set, replaces connect: tests give commands a node of their own.
	dial func(ctx context.Context, mode nodeMode) (*conn, error)
}

// exitError ends a command with an exit code. usage adds the pointer to --help.
type exitError struct {
	code  int
	err   error
	usage bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a bad command line detected by a command itself (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...), usage: true}
}

// failure is a failed run or operation (exit 1).
func failure(err error) error { return &exitError{code: ExitFailure, err: err} }

// silent ends a command with code after it has printed what it had to say.
func silent(code int) error { return &exitError{code: code} }

func run(ctx context.Context, args []string, a *app) int {
	return execute(ctx, a.rootCommand(), args, a.stdin, a.stdout, a.stderr)
}

// execute runs the command line args on root (ctl or engine) and returns the
// exit code. An error is printed once, as "<command>: <message>", followed by
// a pointer to --help after a usage error.
func execute(ctx context.Context, root *cobra.Command, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if args == nil {
		args = []string{} // cobra reads os.Args when given nil
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError(args))
	root.SilenceErrors, root.SilenceUsage = true, true
	root.Version = version()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if cmd == nil {
		cmd = root
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// cobra's own errors: unknown command or flag, bad arguments.
		ee = &exitError{code: ExitUsage, err: err, usage: true}
	}
	if ee.err != nil {
		msg := strings.TrimRight(ee.err.Error(), "\n")
		// The engine package prefixes its errors with "engine: ", which the
		// engine command's own prefix would repeat.
		for p := root.Name() + ": "; strings.HasPrefix(msg, p); {
			msg = strings.TrimPrefix(msg, p)
		}
		fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), msg)
	}
	if ee.usage {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return ee.code
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ctl",
		Short: "Run Drover scripts and inspect their runs",
		Long: `ctl runs Drover scripts, and inspects, replays and controls their runs.

With --server URL (or DROVER_URL) it talks to a running engine node. Without,
it works on a local data dir: the first command starts a node on it in the
background, and later commands use that node, so they start at once and find
the same runs (see ctl background).

Exit codes: 0 success, 1 run failure or operational error, 2 usage error,
3 replay diverged, 4 run cancelled, 130 interrupted.

` + environmentHelp(false),
		Args:              noSubcommand,
		RunE:              helpWhenBare,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},

		SuggestionsMinimumDistance: 2,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", "", "`URL` of an engine node's HTTP API (default $DROVER_URL; none: embedded node)")
	pf.StringVar(&a.dataDir, "data-dir", "", "`DIR` holding the embedded node's data "+dataDirDefault)
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "run the node in-process (as --background off) and log its activity to stderr")
	addMaxExecSteps(pf, &a.maxSteps, "Starlark computation limit per run, as `N` steps, of the embedded node and of ctl replay (default "+strconv.Itoa(script.DefaultMaxSteps)+"; with --server the node's own limit applies to runs)")
	a.sync = bus.SyncAlways
	pf.Var(syncValue{&a.sync, &a.syncSet}, "sync", strings.Replace(syncHelp, "store:", "store of the embedded node:", 1))
	pf.Var(backgroundValue{&a.background, &a.backgroundSet}, "background", backgroundHelp)
	root.Flags().Bool("version", false, "print ctl's version and build, and exit")

	runs := &cobra.Command{
		Use:   "runs",
		Short: "List, show, wait for, watch, export, pin and resume runs",
		Args:  noSubcommand,
		RunE:  helpWhenBare,
	}
	runs.AddCommand(a.runsLsCommand(), a.runsShowCommand(), a.runsWaitCommand(), a.runsWatchCommand(),
		a.runsExportCommand(), a.runsPinCommand(), a.runsResumeCommand())
	root.AddCommand(a.runCommand(), a.deployCommand(), a.rollbackCommand(), a.scriptsCommand(),
		a.replayCommand(), a.cancelCommand(), a.nodesCommand(), a.integrationsCommand(), a.logsCommand(), runs, a.backgroundCommand())
	return root
}

// noSubcommand rejects arguments of a command that only groups subcommands.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageErrorf("%s", msg)
}

func helpWhenBare(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// wantArgs checks a command's positional arguments, naming the missing ones.
func wantArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, got []string) error {
		switch {
		case len(got) < len(names):
			return usageErrorf("missing %s", strings.Join(names[len(got):], " "))
		case len(got) > len(names):
			return usageErrorf("unexpected argument %q (want %s)", got[len(names)], strings.Join(names, " "))
		}
		return nil
	}
}
