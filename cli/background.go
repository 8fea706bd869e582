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
	if *v.p == 0 {
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
	if err != nil || d <= 0 {
		return fmt.Errorf("want off, or how long the background node waits for the next command, such as 10m or 1h")
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
	return fmt.Sprintf("sync=%s max-exec-steps=%d", sync, maxSteps)
}

// connectBackground returns a client of the background node serving dir,
// starting one (or restarting one of another build or settings) as needed.
func (a *app) connectBackground(ctx context.Context, dir string, sync bus.SyncPolicy, idle time.Duration) (*conn, error) {
	build, settings := buildID(), nodeSettings(sync, a.maxSteps)
	if info, ok := findBackground(dir); ok && info.Build == build && info.Settings == settings {
		return &conn{API: client.New(info.URL), close: func() {}}, nil
	}
	// One ctl at a time starts a node: the others then find it.
	unlock, err := lockSpawn(dir)
	if err != nil {
		return nil, failure(err)
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		info, ok := findBackground(dir)
		if ok && info.Build == build && info.Settings == settings {
			return &conn{API: client.New(info.URL), close: func() {}}, nil
		}
		if ok {
			why := "another build of ctl"
			if info.Build == build {
				why = "other settings: " + info.Settings
			}
			fmt.Fprintf(a.stderr, "ctl: restarting the background node on %s (pid %d runs %s)\n", dir, info.PID, why)
			if err := stopBackground(ctx, info); err != nil {
				return nil, failure(err)
			}
		}
		info, err := a.startBackground(ctx, dir, sync, idle)
		if errors.Is(err, bus.ErrDataDirInUse) && attempt < 2 {
			// A background node going idle has not let go of the data dir
			// yet: wait for its exit.
			if pid, ok := backgroundHolder(dir); ok {
				if err := stopBackground(ctx, backgroundInfo{PID: pid}); err != nil {
					return nil, failure(err)
				}
			}
			continue
		}
		if err != nil {
			return nil, failure(err)
		}
		fmt.Fprintf(a.stderr, "ctl: started a background node on %s (pid %d), so that the next commands start at once; it stops after %s without commands, or with ctl background stop\n",
			dir, info.PID, idle)
		return &conn{API: client.New(info.URL), close: func() {}}, nil
	}
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
// node, and returns its release.
func lockSpawn(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the data dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, backgroundLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot start a background node: %w", err)
	}
	// Blocks while another ctl starts one: at most backgroundStart.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start a background node: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
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

// findBackground returns the background node serving dir, if one is alive and
// answers.
func findBackground(dir string) (backgroundInfo, bool) {
	info, ok := readBackground(dir)
	if !ok || !processAlive(info.PID) {
		return backgroundInfo{}, false
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(info.URL + "/v1/health")
	if err != nil {
		return backgroundInfo{}, false
	}
	resp.Body.Close()
	return info, resp.StatusCode == http.StatusOK
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
	if err != nil || !strings.Contains(string(cmdline), "\x00background\x00serve\x00") {
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

// stopBackgroundHolding stops dir's background node so that ctl can open dir
// in-process, and reports whether there was one.
func (a *app) stopBackgroundHolding(ctx context.Context, dir string) (bool, error) {
	info, ok := readBackground(dir)
	if !ok || !processAlive(info.PID) {
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
			info, ok := readBackground(dir)
			if !ok || !processAlive(info.PID) {
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
			w := &idleWatch{idle: idle}
			w.last.Store(time.Now().UnixNano())
			path := filepath.Join(dir, backgroundFile)
			e := &engineFlags{getenv: a.getenv, stderr: a.stderr, http: "127.0.0.1:0", logLevel: "info", grace: closeGrace, wrap: w.wrap}
			e.serving = func(url string) error {
				info := backgroundInfo{PID: os.Getpid(), URL: url, Build: buildID(), Settings: nodeSettings(a.sync, a.maxSteps), Idle: idle.String()}
				if err := writeFileAtomic(path, info); err != nil {
					return fmt.Errorf("cannot announce the background node: %w", err)
				}
				go w.watch(ctx, stop, path)
				return nil
			}
			defer func() {
				if info, ok := readBackground(dir); ok && info.PID == os.Getpid() {
					os.Remove(path)
				}
			}()
			return e.serve(ctx, engine.Options{Name: embeddedName, DataDir: dir, Sync: a.sync, MaxExecSteps: a.maxSteps})
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

// idleWatch stops a background node once it has served no request for idle,
// or when its ctl-node.json is gone (the data dir was removed) or names
// another process.
type idleWatch struct {
	idle   time.Duration
	active atomic.Int64
	last   atomic.Int64 // when the last request ended, in Unix nanoseconds
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

// watch calls stop when the node has been idle for w.idle, after withdrawing
// the file at path and serving backgroundDrain more; or at once when path no
// longer names this process.
func (w *idleWatch) watch(ctx context.Context, stop func(), path string) {
	tick := time.NewTicker(min(w.idle/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if info, ok := readBackground(filepath.Dir(path)); !ok || info.PID != os.Getpid() {
			stop()
			return
		}
		if w.active.Load() == 0 && time.Since(time.Unix(0, w.last.Load())) >= w.idle {
			os.Remove(path)
			select {
			case <-ctx.Done():
			case <-time.After(backgroundDrain):
			}
			stop()
			return
		}
	}
}
