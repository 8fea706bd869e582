package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/engine"
	"github.com/droverhq/drover/telemetry"
)

// closeGrace is how long the embedded node lets runs still in flight go on when
// ctl exits; then it interrupts them, keeping their journals.
const closeGrace = 2 * time.Second

// embeddedName is the node name of the embedded node, shown in step tables.
const embeddedName = "local"

// conn is the API a command works through, and how to let go of it.
type conn struct {
	api.API
	// embedded is true when the node runs inside ctl and stops with it.
	embedded bool
	close    func()
}

// serverURL is the node to talk to, or "" for an embedded node.
func (a *app) serverURL() string {
	if a.server != "" {
		return a.server
	}
	return a.getenv("DROVER_URL")
}

// nodeMode says what an embedded node does, at start, with the unfinished runs
// it finds in its data dir. It does not matter with --server.
type nodeMode int

const (
	// withRecovery continues them (by replay) while ctl runs, so that they can
	// end: ctl run, ctl runs wait.
	withRecovery nodeMode = iota
	// noRecovery leaves them alone, so that a command reading runs executes
	// nothing, and one acting on a named run touches no other: ls, show,
	// export, replay, cancel, pin, resume.
	noRecovery
)

// connect returns a client of the --server node, or starts an embedded node
// that recovers unfinished runs or not, as mode says.
func (a *app) connect(ctx context.Context, mode nodeMode) (*conn, error) {
	if a.dial != nil {
		return a.dial(ctx, mode)
	}
	if url := a.serverURL(); url != "" {
		return &conn{API: client.New(url), close: func() {}}, nil
	}
	dir, err := a.absDataDir()
	if err != nil {
		return nil, err
	}
	sync, err := syncPolicy(a.sync, a.syncSet, a.getenv)
	if err != nil {
		return nil, err
	}
	idle, err := a.backgroundIdle()
	if err != nil {
		return nil, err
	}
	if idle > 0 {
		return a.connectBackground(ctx, dir, sync, idle)
	}
	node, err := loadConfig(a.getenv("DROVER_CONFIG"), a.getenv)
	if err != nil {
		return nil, err
	}
	shutdownTracing, err := telemetry.Setup(ctx, "drover-engine", embeddedName)
	if err != nil {
		return nil, failure(fmt.Errorf("cannot set up tracing from the OTEL_* variables: %w", err))
	}
	logger, logOut := a.logger()
	opts := engine.Options{Name: embeddedName, DataDir: dir, Logger: logger, LogOutput: logOut, NoRecovery: mode == noRecovery,
		MaxExecSteps: a.maxSteps, Sync: sync, Integrations: node.Integrations, Breakers: node.Breakers, Metrics: node.Metrics, NoTriggers: true}
	n, err := engine.NewNode(ctx, opts)
	if errors.Is(err, bus.ErrDataDirInUse) {
		if stopped, serr := a.stopBackgroundHolding(ctx, dir); serr != nil {
			return nil, failure(serr)
		} else if stopped {
			n, err = engine.NewNode(ctx, opts)
		}
	}
	if err != nil {
		shutdownTracing(context.Background())
	}
	if errors.Is(err, bus.ErrDataDirInUse) {
		return nil, failure(err) // the message says what to do
	}
	if err != nil {
		return nil, failure(fmt.Errorf("cannot start the embedded node on %s: %w", dir, err))
	}
	return &conn{API: n, embedded: true, close: func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			fmt.Fprintf(a.stderr, "ctl: stopping the embedded node: %v\n", err)
		}
		shutdownTracing(ctx) // the run's spans are exported before ctl exits
	}}, nil
}

// logger is the embedded node's logger: human-readable lines on stderr with
// --verbose, nothing otherwise.
func (a *app) logger() (*zerolog.Logger, io.Writer) {
	if !a.verbose {
		return nil, nil
	}
	w := zerolog.ConsoleWriter{Out: a.stderr, NoColor: !isTerminal(a.stderr), TimeFormat: "15:04:05.000"}
	// A hook rather than .Timestamp(): zerolog's global time format drops milliseconds.
	l := zerolog.New(w).Level(zerolog.DebugLevel).Hook(zerolog.HookFunc(func(e *zerolog.Event, _ zerolog.Level, _ string) {
		e.Str(zerolog.TimestampFieldName, time.Now().Format(time.RFC3339Nano))
	}))
	return &l, w
}

func isTerminal(w io.Writer) bool {
	if lw, ok := w.(*lockedWriter); ok {
		w = lw.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// lockedWriter serialises writes to stderr, shared by ctl and the embedded
// node's logger.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
