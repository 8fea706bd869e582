package cli

// The background node. Without --server, the ctl binary does not start a node
// of its own for each command: starting one reads the store's indexes back,
// which takes a second at a million stored steps. The first command starts a
// node in a process of its own (ctl background serve) on the data dir, and
// every command talks to it over loopback HTTP until it has heard no command
// for --background (an hour by default). Gradle's and Bazel's daemons work
// the same way. The node announces itself in the data dir's ctl-node.json
// (pid, URL, and the build and settings it runs with: another build of ctl,
// or another --sync or --max-exec-steps, restarts it) and logs to
// ctl-node.log.

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api/client"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/engine"
	"github.com/droverhq/drover/script"
)

const (
	// backgroundFile, in a data dir, names the background node serving it.
	backgroundFile = "ctl-node.json"
	// backgroundLog, in a data dir, is the background node's log.
	backgroundLog = "ctl-node.log"
	// backgroundLock, in a data dir, is held by a ctl starting a node.
	backgroundLock = "ctl-node.lock"
	// defaultIdle is how long a background node waits for the next command.
	defaultIdle = time.Hour
	// backgroundStart bounds the wait for a new background node to serve:
	// starting reads the store's indexes back (seconds at millions of steps).
	backgroundStart = 2 * time.Minute
	// backgroundStop bounds the wait for a background node to exit: runs in
	// flight get closeGrace, then the store is written back.
	backgroundStop = time.Minute
	// backgroundDrain is how long a background node going idle still serves
	// after withdrawing ctl-node.json, for a command that read it just before.
	backgroundDrain = time.Second
)

// backgroundInfo is the content of ctl-node.json.
type backgroundInfo struct {
	PID int    `json:"pid"`
	URL string `json:"url"`
	// Build is the build id of the ctl binary serving; Settings its --sync
	// and --max-exec-steps. A command with others restarts the node.
	Build    string `json:"build"`
	Settings string `json:"settings"`
	// Idle is how long the node waits for a command before it stops.
	Idle string `json:"idle"`
}

// backgroundValue is --background: a duration above zero, or off (0).
type backgroundValue struct {
	p   *time.Duration
	set *bool
}

func (v backgroundValue) String() string {
	switch {
	case !*v.set:
		return "" // the default is in the flag's help
	case *v.p == 0:
		return "off"
	}
	return v.p.String()
}

func (v backgroundValue) Type() string { return "idle" }

func (v backgroundValue) Set(s string) error {
	if s == "off" {
		*v.p, *v.set = 0, true
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return fmt.Errorf("want off, or how long the background node waits for the next command, at least 1s, such as 10m or 1h")
	}
	*v.p, *v.set = d, true
	return nil
}

// backgroundHelp is the help of --background.
const backgroundHelp = "how long, as `IDLE`, the background node serving the data dir waits for the next command before it stops, or off: an embedded node in ctl's own process for each command (default $DROVER_BACKGROUND, else 1h; --verbose implies off)"

// backgroundIdle is how long the background node waits for commands, or 0
// for none: --background, else $DROVER_BACKGROUND, else an hour. Only the ctl
// binary (Main) starts background nodes; with --verbose, ctl runs its node
// in-process, to log its activity to stderr.
func (a *app) backgroundIdle() (time.Duration, error) {
	if !a.canBackground || a.verbose {
		return 0, nil
	}
	if a.backgroundSet {
		return a.background, nil
	}
	if s := a.getenv("DROVER_BACKGROUND"); s != "" {
		var d time.Duration
		if err := (backgroundValue{&d, new(bool)}).Set(s); err != nil {
			return 0, usageErrorf("DROVER_BACKGROUND=%q: %v", s, err)
		}
		return d, nil
	}
	return defaultIdle, nil
}

// nodeSettings are the settings of a background node that a command can ask
// for: a command asking for others restarts it.
func nodeSettings(sync bus.SyncPolicy, maxSteps uint64) string {
	if maxSteps == 0 {
		maxSteps = script.DefaultMaxSteps
	}
	return fmt.Sprintf("sync=%s max-exec-steps=%d", sync, maxSteps)
}

// connectBackground returns a client of the background node serving dir,
// starting one (or restarting one of another build or settings) as needed.
func (a *app) connectBackground(ctx context.Context, dir string, sync bus.SyncPolicy, idle time.Duration) (*conn, error) {
	build, settings := buildID(), nodeSettings(sync, a.maxSteps)
	if info, ok := findBackground(dir); ok && info.Build == build && info.Settings == settings {
		return backgroundConn(dir, info), nil
	}
	// One ctl at a time starts a node: the others then find it.
	unlock, err := lockSpawn(ctx, dir)
	if err != nil {
		return nil, interruptedOr(ctx, err)
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		info, ok := findBackground(dir)
		if ok && info.Build == build && info.Settings == settings {
			return backgroundConn(dir, info), nil
		}
		if ok {
			why := "another build of ctl"
			if info.Build == build {
				why = "other settings: " + info.Settings
			}
			fmt.Fprintf(a.stderr, "ctl: restarting the background node on %s (pid %d runs %s)\n", dir, info.PID, why)
			if err := stopBackground(ctx, info); err != nil {
				return nil, interruptedOr(ctx, err)
			}
		}
		info, err := a.startBackground(ctx, dir, sync, idle)
		if errors.Is(err, bus.ErrDataDirInUse) && attempt < 2 {
			// A background node going idle has not let go of the data dir
			// yet: wait for its exit. Any other holder (an engine, an
			// in-process ctl) is the error.
			if pid, ok := backgroundHolder(dir); ok {
				if err := stopBackground(ctx, backgroundInfo{PID: pid}); err != nil {
					return nil, interruptedOr(ctx, err)
				}
				continue
			}
		}
		if err != nil {
			return nil, interruptedOr(ctx, err)
		}
		fmt.Fprintf(a.stderr, "ctl: started a background node on %s (pid %d), so that the next commands start at once; it stops after %s without commands, or with ctl background stop\n",
			dir, info.PID, idle)
		return backgroundConn(dir, info), nil
	}
}

// backgroundConn is a command's connection to dir's background node.
func backgroundConn(dir string, info backgroundInfo) *conn {
	c := client.New(info.URL).WithUnreachableHint(fmt.Sprintf("the background node on %s stopped; run the command again to start another, and see %s",
		dir, filepath.Join(dir, backgroundLog)))
	return &conn{API: c, close: func() {}}
}

// startBackground starts a background node on dir and waits until it serves.
// An error wrapping bus.ErrDataDirInUse means another process holds dir.
func (a *app) startBackground(ctx context.Context, dir string, sync bus.SyncPolicy, idle time.Duration) (backgroundInfo, error) {
	exe, err := os.Executable()
	if err != nil {
		return backgroundInfo{}, fmt.Errorf("cannot start a background node: %w (run with --background off)", err)
	}
	if strings.HasSuffix(exe, ".test") {
		// A test calling Main: its binary would run the tests again.
		return backgroundInfo{}, errors.New("a Go test binary cannot start itself as ctl's background node: set DROVER_BACKGROUND=off")
	}
	logPath := filepath.Join(dir, backgroundLog)
	os.Rename(logPath, logPath+".1") // the previous node's log, kept once
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return backgroundInfo{}, fmt.Errorf("cannot start a background node: %w", err)
	}
	args := []string{"background", "serve", "--data-dir", dir, "--sync", sync.String(), "--background", idle.String()}
	if a.maxSteps > 0 {
		args = append(args, "--max-exec-steps", strconv.FormatUint(a.maxSteps, 10))
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // not interrupted with ctl's terminal
	closeInheritedFiles()
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		return backgroundInfo{}, fmt.Errorf("cannot start a background node: %w (run with --background off)", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.NewTimer(backgroundStart)
	defer deadline.Stop()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		if info, ok := readBackground(dir); ok && info.PID == cmd.Process.Pid {
			return info, nil
		}
		select {
		case <-poll.C:
		case <-exited:
			if info, ok := readBackground(dir); ok && info.PID == cmd.Process.Pid {
				return backgroundInfo{}, fmt.Errorf("the background node on %s stopped at once; see %s", dir, logPath)
			}
			return backgroundInfo{}, backgroundFailed(logPath)
		case <-deadline.C:
			cmd.Process.Signal(syscall.SIGTERM)
			return backgroundInfo{}, fmt.Errorf("the background node on %s did not serve within %s; see %s, or run with --background off", dir, backgroundStart, logPath)
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			return backgroundInfo{}, ctx.Err()
		}
	}
}

// lockSpawn takes dir's ctl-node.lock, held while a ctl starts a background
// node, and returns its release. It waits while another ctl starts one (at
// most backgroundStart), or until ctx ends.
func lockSpawn(ctx context.Context, dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the data dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, backgroundLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot start a background node: %w", err)
	}
	deadline := time.Now().Add(backgroundStart)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("cannot start a background node: lock %s: %w (another ctl is starting one: is it stopped?)", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// interruptedOr is err as a command's error: exit 130 if ctx ended (ctl was
// interrupted), else a failure.
func interruptedOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &exitError{code: ExitInterrupted, err: errors.New("interrupted while the background node was starting")}
	}
	return failure(err)
}

// closeInheritedFiles marks the descriptors ctl inherited above stderr (a
// shell's 3>&1, a test harness's pipes) close-on-exec, so that the node,
// which outlives ctl, does not hold them open: a reader waiting for their end
// would wait for the node's.
func closeInheritedFiles() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// backgroundFailed is the error of a background node that exited before
// serving: the last line of its log, which says why.
func backgroundFailed(logPath string) error {
	b, _ := os.ReadFile(logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	last := strings.TrimPrefix(lines[len(lines)-1], "ctl background serve: ")
	if strings.Contains(last, bus.ErrDataDirInUse.Error()) {
		return fmt.Errorf("%w: %s", bus.ErrDataDirInUse, strings.TrimPrefix(last, bus.ErrDataDirInUse.Error()+": "))
	}
	if last == "" {
		last = "no log"
	}
	return fmt.Errorf("the background node could not start: %s (log: %s)", last, logPath)
}

// readBackground reads dir's ctl-node.json.
func readBackground(dir string) (backgroundInfo, bool) {
	var info backgroundInfo
	b, err := os.ReadFile(filepath.Join(dir, backgroundFile))
	if err != nil || json.Unmarshal(b, &info) != nil || info.PID <= 0 || info.URL == "" {
		return backgroundInfo{}, false
	}
	return info, true
}

// findBackground returns the background node serving dir, if one is alive,
// is dir's node, and answers.
func findBackground(dir string) (backgroundInfo, bool) {
	info, ok := readBackground(dir)
	if !ok || !nodeOf(info.PID, dir) {
		return backgroundInfo{}, false
	}
	// The probe's connection is closed once answered, not kept idle for
	// the rest of the command.
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(info.URL + "/v1/health")
	if err != nil {
		return backgroundInfo{}, false
	}
	resp.Body.Close()
	return info, resp.StatusCode == http.StatusOK
}

// nodeOf reports whether process pid runs, and is dir's background node: on
// Linux, its command line is ctl background serve --data-dir dir (a pid named
// by a stale ctl-node.json may since have gone to another process).
func nodeOf(pid int, dir string) bool {
	if !processAlive(pid) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // no procfs: trust the pid
	}
	return isServeCommand(string(cmdline), dir)
}

// isServeCommand reports whether cmdline (NUL-separated, as in
// /proc/PID/cmdline) is ctl background serve on dir.
func isServeCommand(cmdline, dir string) bool {
	return strings.Contains(cmdline, "\x00background\x00serve\x00") && strings.Contains(cmdline, "\x00--data-dir\x00"+dir+"\x00")
}

// processAlive reports whether process pid runs (a zombie, exited but not yet
// reaped, does not).
func processAlive(pid int) bool {
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		// pid (comm) state ...: comm may hold spaces and parentheses.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
			return s[i+2] != 'Z' && s[i+2] != 'X'
		}
		return true
	} else if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat("/proc/self/stat"); err == nil {
			return false // procfs is there and pid is not in it
		}
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// backgroundHolder returns the process holding dir's lock if it is a
// background node that no longer announces itself in ctl-node.json: one
// stopping.
func backgroundHolder(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "LOCK"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !isServeCommand(string(cmdline), dir) {
		return 0, false
	}
	if info, ok := readBackground(dir); ok && info.PID == pid {
		return 0, false // it serves: use it
	}
	return pid, true
}

// stopBackground stops the background node of info and waits for its exit.
func stopBackground(ctx context.Context, info backgroundInfo) error {
	if err := syscall.Kill(info.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cannot stop the background node (pid %d): %w", info.PID, err)
	}
	deadline := time.Now().Add(backgroundStop)
	for processAlive(info.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the background node (pid %d) did not stop within %s; kill it", info.PID, backgroundStop)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// liveBackground returns the background node that dir's ctl-node.json names
// if that process is dir's node (answering or not), and removes a stale file.
func liveBackground(dir string) (backgroundInfo, bool) {
	info, ok := readBackground(dir)
	if !ok {
		return backgroundInfo{}, false
	}
	if !nodeOf(info.PID, dir) {
		if again, ok := readBackground(dir); ok && again == info {
			os.Remove(filepath.Join(dir, backgroundFile))
		}
		return backgroundInfo{}, false
	}
	return info, true
}

// stopBackgroundHolding stops dir's background node so that ctl can open dir
// in-process, and reports whether there was one.
func (a *app) stopBackgroundHolding(ctx context.Context, dir string) (bool, error) {
	info, ok := liveBackground(dir)
	if !ok {
		return false, nil
	}
	fmt.Fprintf(a.stderr, "ctl: stopping the background node on %s (pid %d) to run the node in-process\n", dir, info.PID)
	return true, stopBackground(ctx, info)
}

// buildID identifies this ctl binary: the Go build id in its ELF notes, which
// changes with any change to the code; elsewhere (no ELF) its path, size and
// modification time; else its version.
func buildID() string {
	exe, err := os.Executable()
	if err != nil {
		return version()
	}
	if f, err := elf.Open(exe); err == nil {
		defer f.Close()
		// An ELF note: name size, desc size, type (4 bytes each), "Go\0\0", the id.
		if s := f.Section(".note.go.buildid"); s != nil {
			if b, err := s.Data(); err == nil && len(b) > 16 {
				return strings.TrimRight(string(b[16:]), "\x00")
			}
		}
	}
	if st, err := os.Stat(exe); err == nil {
		return fmt.Sprintf("%s %d %d", exe, st.Size(), st.ModTime().UnixNano())
	}
	return version()
}

// backgroundCommand is ctl background: status, stop, and the hidden serve
// that a command starts.
func (a *app) backgroundCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "background",
		Short: "Show or stop the background node serving the data dir",
		Long: `Without --server, the first ctl command starts a node in the background on
the data dir, and later commands talk to it, so that they start at once
however much history the data dir holds. It stops after --background
(default 1h) without commands. It announces itself in DIR/` + backgroundFile + `
and logs to DIR/` + backgroundLog + `.

--background off (or DROVER_BACKGROUND=off) runs an embedded node in ctl's own
process for each command instead, as does --verbose.`,
		Args: noSubcommand,
		RunE: helpWhenBare,
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Say whether a background node serves the data dir",
		Args:  wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := a.absDataDir()
			if err != nil {
				return err
			}
			info, ok := findBackground(dir)
			if !ok {
				fmt.Fprintf(a.stdout, "no background node on %s\n", dir)
				return nil
			}
			fmt.Fprintf(a.stdout, "background node on %s: pid %d, %s, %s, stops after %s without commands\n",
				dir, info.PID, info.URL, info.Settings, info.Idle)
			return nil
		},
	}
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Stop the background node serving the data dir",
		Long: `stop stops the background node serving the data dir. Runs in flight get 2s to
end; the others stay unfinished in the journal, and the next node on the data
dir continues them.`,
		Args: wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := a.absDataDir()
			if err != nil {
				return err
			}
			info, ok := liveBackground(dir)
			if !ok {
				fmt.Fprintf(a.stdout, "no background node on %s\n", dir)
				return nil
			}
			if err := stopBackground(cmd.Context(), info); err != nil {
				return failure(err)
			}
			fmt.Fprintf(a.stdout, "stopped the background node on %s (pid %d)\n", dir, info.PID)
			return nil
		},
	}
	cmd.AddCommand(status, stop, a.backgroundServeCommand())
	return cmd
}

// absDataDir is the data dir as an absolute path.
func (a *app) absDataDir() (string, error) {
	dir, err := dataDir(a.dataDir, a.getenv)
	if err != nil {
		return "", failure(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", failure(fmt.Errorf("data dir %s: %w", dir, err))
	}
	return abs, nil
}

// backgroundServeCommand is the background node itself: an engine node on
// the data dir serving its API on a free loopback port, with no NATS port,
// until it has served no request for --background.
func (a *app) backgroundServeCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "serve",
		Short:  "Serve the data dir as the background node (started by ctl itself)",
		Hidden: true,
		Args:   wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := a.absDataDir()
			if err != nil {
				return err
			}
			idle := a.background
			if !a.backgroundSet || idle == 0 {
				idle = defaultIdle
			}
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			path := filepath.Join(dir, backgroundFile)
			w := &idleWatch{idle: idle, path: path}
			e := &engineFlags{getenv: a.getenv, stderr: a.stderr, http: "127.0.0.1:0", logLevel: "info", grace: closeGrace, wrap: w.wrap}
			e.serving = func(url string, node *engine.Node) error {
				w.info = backgroundInfo{PID: os.Getpid(), URL: url, Build: buildID(), Settings: nodeSettings(a.sync, a.maxSteps), Idle: idle.String()}
				w.busy = func() bool { return stepsInFlight(ctx, node) }
				if err := writeFileAtomic(path, w.info); err != nil {
					return fmt.Errorf("cannot announce the background node: %w", err)
				}
				w.last.Store(time.Now().UnixNano()) // idle from now, not from the start of the store
				go w.watch(ctx, stop)
				return nil
			}
			defer func() {
				if info, ok := readBackground(dir); ok && info.PID == os.Getpid() {
					os.Remove(path)
				}
			}()
			node, err := loadConfig(a.getenv("DROVER_CONFIG"), a.getenv)
			if err != nil {
				return err
			}
			return e.serve(ctx, engine.Options{Name: embeddedName, DataDir: dir, Sync: a.sync, MaxExecSteps: a.maxSteps,
				Integrations: node.Integrations, Breakers: node.Breakers, NoTriggers: true})
		},
	}
}

// writeFileAtomic writes v as JSON to path by renaming a temporary file, so
// that a reader sees the whole file or none.
func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// idleWatch stops a background node once it has served no request and
// executed no step for idle, or when its ctl-node.json is gone (the data dir
// was removed) or names another process.
type idleWatch struct {
	idle   time.Duration
	path   string         // ctl-node.json
	info   backgroundInfo // what it says
	busy   func() bool    // whether steps are executing
	active atomic.Int64   // requests being served
	last   atomic.Int64   // when the node was last busy, in Unix nanoseconds
}

// wrap counts h's requests in flight and notes when the last one ended.
func (w *idleWatch) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.active.Add(1)
		defer func() {
			w.last.Store(time.Now().UnixNano())
			w.active.Add(-1)
		}()
		h.ServeHTTP(rw, r)
	})
}

// idleFor is how long the node has been idle: 0 while it serves a request or
// executes a step.
func (w *idleWatch) idleFor() time.Duration {
	if w.active.Load() > 0 || w.busy() {
		w.last.Store(time.Now().UnixNano())
		return 0
	}
	return time.Since(time.Unix(0, w.last.Load()))
}

// watch calls stop once the node has been idle for w.idle: it withdraws
// ctl-node.json, serves backgroundDrain more for a command that read the
// file just before, and announces itself again if one came. It calls stop at
// once when the file no longer names this process.
func (w *idleWatch) watch(ctx context.Context, stop func()) {
	tick := time.NewTicker(max(min(w.idle/4, time.Second), 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if info, ok := readBackground(filepath.Dir(w.path)); !ok || info.PID != os.Getpid() {
			stop()
			return
		}
		if w.idleFor() < w.idle {
			continue
		}
		withdrawn := time.Now()
		os.Remove(w.path)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backgroundDrain):
		}
		if w.idleFor() == 0 || time.Unix(0, w.last.Load()).After(withdrawn) {
			if err := writeFileAtomic(w.path, w.info); err == nil {
				continue // a command came meanwhile: go on serving
			}
		}
		stop()
		return
	}
}

// stepsInFlight reports whether node is executing steps, from its own
// latest meter reading.
func stepsInFlight(ctx context.Context, node *engine.Node) bool {
	nodes, err := node.Nodes(ctx)
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if n.Name == node.Name() {
			return n.Reading.InFlightSum > 0
		}
	}
	return false
}
