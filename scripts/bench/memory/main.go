// Command memory measures an engine's memory as the journal it retains
// grows: it starts a real `engine` process on a fresh data dir, fills the
// journal with runs of -per-run steps each up to each total in -steps, and at
// each total reports the process's resident memory (VmRSS) with the runs in
// the data dir, live and after a restart, each once settled (130 s after the
// last write, then stable), and the number of subjects the journal stream
// holds (what nats-server keeps an index entry for in memory).
//
//	go run ./scripts/bench/memory [-steps 0,100000,1000000] [-per-run 1000] [-old REV]
//
// -old REV measures, in the same sitting, an engine built from git revision
// REV too (e.g. one from before journals were sealed), for the before/after.
// -keep DIR keeps the last data dir (e.g. for scripts/bench/ctl.sh). Load is
// generated over loopback only; the engine runs with --sync interval unless
// -sync says otherwise.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
)

func main() {
	stepsFlag := flag.String("steps", "0,100000,1000000", "retained step totals to measure at, comma-separated")
	perRun := flag.Int("per-run", 1000, "steps per run")
	conc := flag.Int("conc", 16, "runs started at once")
	syncPolicy := flag.String("sync", "interval", "the engine's --sync")
	old := flag.String("old", "", "git revision of an engine to measure too (before/after)")
	keep := flag.String("keep", "", "keep the new engine's data dir here")
	trace = flag.Bool("trace", false, "print RSS every 10 s while it settles")
	flag.Parse()
	var totals []int
	for _, s := range strings.Split(*stepsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fail("bad -steps: %v", err)
		}
		totals = append(totals, n)
	}
	work, err := os.MkdirTemp("", "drover-memory-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(work)
	engines := []struct{ name, bin string }{{"this tree", build(work, "", "new")}}
	if *old != "" {
		engines = append(engines, struct{ name, bin string }{*old, build(work, *old, "old")})
	}
	fmt.Printf("%d steps per run, --sync %s, %s\n\n", *perRun, *syncPolicy, time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("%-12s %10s %8s %14s %16s %18s\n", "engine", "steps", "runs", "RSS live (MB)", "RSS restart (MB)", "journal subjects")
	for i, e := range engines {
		dir := filepath.Join(work, fmt.Sprint("data", i))
		if i == 0 && *keep != "" {
			dir = *keep
		}
		measure(e.name, e.bin, dir, *syncPolicy, totals, *perRun, *conc)
	}
}

// build builds cmd/engine from the working tree (rev "") or from git
// revision rev, into work.
func build(work, rev, name string) string {
	bin := filepath.Join(work, name+"-engine")
	src := "."
	if rev != "" {
		src = filepath.Join(work, "src-"+name)
		run("git", "worktree", "add", "--detach", src, rev)
		defer run("git", "worktree", "remove", "--force", src)
	}
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/engine")
	cmd.Dir, cmd.Stderr = src, os.Stderr
	if err := cmd.Run(); err != nil {
		fail("build %s: %v", name, err)
	}
	return bin
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fail("%s %v: %v", name, args, err)
	}
}

// engine is a running engine process.
type engine struct {
	cmd     *exec.Cmd
	http    string
	natsURL string
}

func start(bin, dir, syncPolicy string) *engine {
	httpPort, natsPort := freePort(), freePort()
	e := &engine{http: fmt.Sprintf("http://127.0.0.1:%d", httpPort), natsURL: fmt.Sprintf("nats://127.0.0.1:%d", natsPort)}
	e.cmd = exec.Command(bin, "--name", "mem", "--data-dir", dir, "--http", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--sync", syncPolicy, "--log-level", "warn")
	e.cmd.Stderr = os.Stderr
	if err := e.cmd.Start(); err != nil {
		fail("start engine: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(e.http + "/v1/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return e
			}
		}
		if time.Now().After(deadline) {
			fail("the engine did not answer within 60s")
		}
		time.Sleep(50 * time.Millisecond) // polling interval while it starts
	}
}

func (e *engine) stop() {
	e.cmd.Process.Signal(syscall.SIGTERM)
	e.cmd.Wait()
}

// trace prints RSS while it settles (-trace).
var trace *bool

// settle is how long after the last write memory is read: past Go's forced
// garbage collection of an idle process (every 2 minutes: until then, an
// engine that has just finished a burst of work still holds that work's
// garbage), the journal's de-duplication window (10 s) and the server's block
// caches' expiry, so that what is read is what the retained journal costs
// rather than what the last burst of writing left behind.
const settle = 130 * time.Second

// rss is the process's resident memory in MB, once it has settled: from
// settle on, read every 5 s until three readings in a row are within 2%
// (at most 2 minutes). The Go runtime gives freed memory back to the system
// gradually, so an early reading includes what a burst left behind.
func (e *engine) rss() float64 {
	read := func() float64 {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
		if err != nil {
			fail("%v", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
				return float64(kb) / 1024
			}
		}
		return 0
	}
	for t := time.Duration(0); t < settle; t += 10 * time.Second {
		if *trace {
			fmt.Fprintf(os.Stderr, "memory: %3.0fs after the last write: RSS %.1f MB\n", t.Seconds(), read())
		}
		time.Sleep(10 * time.Second) // measure the settled state, not the burst (see settle)
	}
	readings := []float64{read()}
	for len(readings) < 24 {
		time.Sleep(5 * time.Second) // sampling interval
		readings = append(readings, read())
		if n := len(readings); n >= 3 && spread(readings[n-3:]) < 0.02 {
			break
		}
	}
	return readings[len(readings)-1]
}

// spread is (max-min)/max of rs.
func spread(rs []float64) float64 {
	lo, hi := rs[0], rs[0]
	for _, r := range rs {
		lo, hi = min(lo, r), max(hi, r)
	}
	return (hi - lo) / hi
}

// subjects is the number of subjects the journal stream holds, once it has
// stopped changing (ended runs are sealed in the background).
func (e *engine) subjects() uint64 {
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		fail("connect to the engine's NATS: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	prev := uint64(1 << 62)
	for i := 0; i < 120; i++ {
		s, err := js.Stream(context.Background(), "DROVER_JOURNAL")
		if err != nil {
			fail("journal stream: %v", err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			fail("journal stream: %v", err)
		}
		n := info.State.NumSubjects
		if n == prev {
			return n
		}
		prev = n
		time.Sleep(time.Second) // polling interval while sealing goes on
	}
	return prev
}

func measure(name, bin, dir, syncPolicy string, totals []int, perRun, conc int) {
	e := start(bin, dir, syncPolicy)
	c := client.New(e.http)
	src := fmt.Sprintf("def main(input):\n    for i in range(%d):\n        time.now()\n    return %d\n", perRun, perRun)
	script := api.Script{Name: "fill", Main: "fill.star", Files: map[string]string{"fill.star": src}}
	filled := 0
	for _, total := range totals {
		runs := (total - filled + perRun - 1) / perRun
		fill(c, script, runs, conc)
		filled += runs * perRun
		subjects := e.subjects()
		live := e.rss()
		e.stop()
		e = start(bin, dir, syncPolicy)
		c = client.New(e.http)
		e.subjects()
		restarted := e.rss()
		fmt.Printf("%-12s %10d %8d %14.1f %16.1f %18d\n", name, filled, filled/perRun, live, restarted, subjects)
	}
	e.stop()
}

// fill starts runs runs of script, conc at a time, and waits for each.
func fill(c *client.Client, script api.Script, runs, conc int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(runs) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				r, err := c.Start(ctx, api.StartRequest{Script: script, Input: json.RawMessage("null")})
				if err == nil {
					r, err = c.Wait(ctx, r.ID)
				}
				cancel()
				if err != nil || r.Status != api.StatusCompleted {
					fail("fill run: %v %+v", err, r)
				}
			}
		}()
	}
	wg.Wait()
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("%v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "memory: "+format+"\n", args...)
	os.Exit(1)
}
