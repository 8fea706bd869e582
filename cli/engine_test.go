package cli

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/engine"
)

// engineResult is one run of the engine command.
type engineResult struct {
	code           int
	stdout, stderr string
}

// engineCmd runs the engine command with args until it returns; env is its
// environment. It must not start a node: ctx is already cancelled.
func engineCmd(t *testing.T, env map[string]string, args ...string) engineResult {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := runEngine(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
	return engineResult{code, stdout.String(), stderr.String()}
}

// TestSyncPolicyFromEnvironment: DROVER_SYNC sets the policy unless --sync
// does, and a bad value is a usage error.
func TestSyncPolicyFromEnvironment(t *testing.T) {
	for _, tt := range []struct {
		env, flag, want string
	}{
		{"", "", "always"},
		{"interval:5s", "", "interval:5s"},
		{"interval", "always", "always"},
		{"", "interval", "interval:2m0s"},
	} {
		e := &engineFlags{getenv: func(k string) string { return map[string]string{"DROVER_SYNC": tt.env, "DROVER_DATA": t.TempDir()}[k] }}
		cmd := e.command()
		args := []string{"--http", "127.0.0.1:0"}
		if tt.flag != "" {
			args = append(args, "--sync", tt.flag)
		}
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		opts, err := e.options()
		if err != nil || opts.Sync.String() != tt.want {
			t.Errorf("env %q flag %q: %v %v, want %s", tt.env, tt.flag, opts.Sync, err, tt.want)
		}
	}
	r := engineCmd(t, map[string]string{"DROVER_SYNC": "often", "DROVER_DATA": t.TempDir()}, "--http", "127.0.0.1:0")
	if r.code != ExitUsage || !strings.Contains(r.stderr, `engine: DROVER_SYNC="often": want always, interval or interval:DURATION`) {
		t.Fatalf("bad DROVER_SYNC: exit %d %s", r.code, r.stderr)
	}
}

// TestEngineUsageErrors checks that engine refuses a bad command line with
// exit 2 and one line saying what is wrong, before anything starts: the data
// dir is not even created.
func TestEngineUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown log level", []string{"--log-level", "loud"}, `invalid argument "loud" for "--log-level" flag: want debug, info, warn or error`},
		{"one dash", []string{"-name", "n1"}, "-name: flags take two dashes: --name"},
		{"one dash with value", []string{"-http=127.0.0.1:0"}, "-http=127.0.0.1:0: flags take two dashes: --http=127.0.0.1:0"},
		{"unknown flag", []string{"--bogus"}, "unknown flag: --bogus"},
		{"stray argument", []string{"--name", "n1", "n2"}, `unexpected argument "n2": engine takes no arguments, only flags`},
		{"negative grace", []string{"--grace", "-1s"}, `invalid argument "-1s" for "--grace" flag: want a duration 0 or more`},
		{"zero step timeout", []string{"--step-timeout", "0"}, `invalid argument "0" for "--step-timeout" flag: want a duration above 0`},
		{"zero trigger timeout", []string{"--trigger-timeout=0s"}, `invalid argument "0s" for "--trigger-timeout" flag: want a duration above 0`},
		{"retention in days", []string{"--retention", "30d"}, `invalid argument "30d" for "--retention" flag: want a duration such as 30s, 5m or 2h; write days in hours (24h, 720h)`},
		{"duration not a duration", []string{"--grace", "soon"}, `invalid argument "soon" for "--grace" flag: want a duration such as 300ms`},
		{"zero max exec steps", []string{"--max-exec-steps", "0"}, `invalid argument "0" for "--max-exec-steps" flag: want a whole number above 0`},
		{"zero payload limit", []string{"--payload-limit", "0"}, "--payload-limit 0: want a number of bytes above 0"},
		{"negative replicas", []string{"--replicas", "-1"}, "--replicas -1: want 1 to 5, or 0 for 3 with 3 or more nodes, else 1"},
		{"too many replicas", []string{"--replicas", "7"}, "--replicas 7: want 1 to 5"},
		{"no partitions", []string{"--partitions", "0"}, "--partitions 0: want 1 to 64"},
		{"too many partitions", []string{"--partitions", "65"}, "--partitions 65: want 1 to 64"},
		{"bad node name", []string{"--name", "n1.eu"}, `--name "n1.eu": a node name cannot be empty or hold dots, spaces, * or >`},
		{"resource without value", []string{"--resource", "db"}, `--resource: bad resource declaration "db": no value; write NAME=N/PERIOD`},
		{"resource bad option", []string{"--resource", "api=5/s,brust=3"}, `--resource: bad resource declaration "api=5/s,brust=3": unknown option "brust"`},
		{"resource twice", []string{"--resource", "db=2", "--resource", "db=3"}, `--resource: bad resource declaration "db=3": resource "db" is declared twice`},
		{"attr header without attr", []string{"--attr-header", "X-Customer-Id"}, `--attr-header "X-Customer-Id": write HEADER=ATTR, e.g. X-Customer-Id=customer`},
		{"attr header bad header", []string{"--attr-header", "X Customer=customer"}, `--attr-header "X Customer=customer": "X Customer" is not an HTTP header name`},
		{"attr header bad attr", []string{"--attr-header", "X-Customer-Id=customer-id"}, `--attr-header "X-Customer-Id=customer-id": attribute name "customer-id" must be 1 to 64 letters, digits or _`},
		{"attr header twice", []string{"--attr-header", "x-customer-id=a", "--attr-header", "X-Customer-Id=b"}, `--attr-header "X-Customer-Id=b": header X-Customer-Id is already the attribute a`},
		{"sync policy", []string{"--sync", "sometimes"}, `invalid argument "sometimes" for "--sync" flag: want always, interval or interval:DURATION`},
		{"sync interval", []string{"--sync", "interval:0s"}, `invalid argument "interval:0s" for "--sync" flag: want always, interval or interval:DURATION`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			r := engineCmd(t, map[string]string{"DROVER_DATA": dir}, append(tt.args, "--http", "127.0.0.1:0", "--listen", "")...)
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if r.code != ExitUsage || r.stdout != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], "engine: "+tt.want) ||
				strings.HasPrefix(lines[0], "engine: engine:") || lines[1] != "Run 'engine --help' for usage." {
				t.Fatalf("want exit 2 and %q then the hint\nexit %d\n--- stdout\n%s--- stderr\n%s", "engine: "+tt.want, r.code, r.stdout, r.stderr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the data dir was created (%v): the node started", err)
			}
		})
	}
}

func TestEngineHelpAndVersion(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		r := engineCmd(t, nil, arg)
		if r.code != ExitOK || r.stderr != "" {
			t.Fatalf("engine %s: exit %d\n%s", arg, r.code, r.stderr)
		}
		for _, want := range []string{"Usage:\n  engine [flags]\n", "Examples:\n  engine --name n1", "Exit codes: 0 clean shutdown",
			"Environment:\n", "DROVER_DATA", "--data-dir DIR", "--log-level LEVEL", "--max-exec-steps N", "(default 10000000)", "--version"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("engine %s lacks %q:\n%s", arg, want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "DROVER_URL") {
			t.Errorf("engine %s lists DROVER_URL, which only ctl reads", arg)
		}
	}
	r := engineCmd(t, nil, "--version")
	if r.code != ExitOK || r.stdout != "engine version "+version()+"\n" || r.stderr != "" {
		t.Fatalf("engine --version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestEngineDataDirDefault(t *testing.T) {
	xdg := t.TempDir()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"flag", []string{"--data-dir", "/d/flag"}, map[string]string{"DROVER_DATA": "/d/env"}, "/d/flag"},
		{"DROVER_DATA", nil, map[string]string{"DROVER_DATA": "/d/env", "XDG_DATA_HOME": xdg}, "/d/env"},
		{"XDG_DATA_HOME", nil, map[string]string{"XDG_DATA_HOME": xdg, "HOME": "/home/u"}, filepath.Join(xdg, "drover")},
		{"HOME", nil, map[string]string{"HOME": "/home/u"}, "/home/u/.local/share/drover"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &engineFlags{getenv: func(k string) string { return tt.env[k] }}
			if err := e.command().ParseFlags(append(tt.args, "--name", "n1")); err != nil {
				t.Fatal(err)
			}
			opts, err := e.options()
			if err != nil || opts.DataDir != tt.want {
				t.Fatalf("data dir %q, %v; want %q", opts.DataDir, err, tt.want)
			}
		})
	}
}

// TestEngineServes starts a node the way a user does, its data dir from
// DROVER_DATA, then stops it as SIGTERM does: exit 0.
func TestEngineServes(t *testing.T) {
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var stdout, stderr bytes.Buffer
	w := &lockedWriter{w: &stderr} // as EngineMain gives it
	logs := func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		return stderr.String()
	}
	exited := make(chan int, 1)
	go func() {
		exited <- runEngine(ctx, []string{"--name", "t1", "--http", "127.0.0.1:0", "--listen", "", "--grace", "1s"},
			func(k string) string { return map[string]string{"DROVER_DATA": dir}[k] }, &stdout, w)
	}()
	serving := regexp.MustCompile(`"http":"(http://[^"]+)".*"data_dir":"([^"]+)".*"message":"serving"`)
	var m []string
	for deadline := time.Now().Add(30 * time.Second); m == nil; m = serving.FindStringSubmatch(logs()) {
		select {
		case code := <-exited:
			t.Fatalf("engine exited %d before serving:\n%s", code, logs())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine did not serve within 30s:\n%s", logs())
		}
	}
	if m[2] != dir {
		t.Errorf("data dir %s, want DROVER_DATA's %s", m[2], dir)
	}
	resp, err := http.Get(m[1] + "/v1/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := os.Stat(filepath.Join(dir, "LOCK")); err != nil {
		t.Errorf("the node does not hold DROVER_DATA: %v", err)
	}
	stop()
	select {
	case code := <-exited:
		if code != ExitOK || stdout.Len() != 0 || !strings.Contains(logs(), `"message":"shutting down"`) {
			t.Fatalf("exit %d after the signal, stdout %q:\n%s", code, stdout.String(), logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("engine did not stop within 30s:\n%s", logs())
	}
}

// TestEngineDataDirInUse starts engine on a data dir another node holds: it
// exits 1 with one error line, the engine's prefix not repeated.
func TestEngineDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	n, err := engine.NewNode(context.Background(), engine.Options{Name: "holder", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // ends a node that starts by mistake
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := runEngine(ctx, []string{"--name", "t1", "--data-dir", dir, "--http", "127.0.0.1:0", "--listen", ""}, os.Getenv, &stdout, &stderr)
	r := engineResult{code, stdout.String(), stderr.String()}
	if r.code != ExitFailure || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || strings.Contains(r.stderr, "engine: engine:") ||
		!strings.HasPrefix(r.stderr, "engine: ") || !strings.Contains(r.stderr, "data dir in use: "+dir+" is held by process ") {
		t.Fatalf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestEngineConfigErrors: a configuration file that cannot be read or names
// what this build lacks is a usage error saying where, before anything
// starts; DROVER_CONFIG names it as --config does.
func TestEngineConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "drover.yaml")
	if err := os.WriteFile(bad, []byte("integrations:\n  sqll:\n    dsn: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"missing file", nil, []string{"--config", filepath.Join(dir, "none.yaml")}, "open " + filepath.Join(dir, "none.yaml") + ": no such file or directory"},
		{"unknown integration", nil, []string{"--config", bad}, bad + `:2: integration "sqll" is not in this engine build`},
		{"from the environment", map[string]string{"DROVER_CONFIG": bad}, nil, bad + `:2: integration "sqll" is not in this engine build`},
		{"bad setting variable", map[string]string{"DROVER_CACHE_TIMEOUT": "soon"}, nil, `DROVER_CACHE_TIMEOUT="soon": want a duration such as 500ms or 10s`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"DROVER_DATA": filepath.Join(t.TempDir(), "data")}
			for k, v := range tt.env {
				env[k] = v
			}
			r := engineCmd(t, env, append(tt.args, "--http", "127.0.0.1:0", "--listen", "")...)
			if r.code != ExitUsage || !strings.HasPrefix(r.stderr, "engine: "+tt.want) {
				t.Fatalf("exit %d\n%s\nwant engine: %s", r.code, r.stderr, tt.want)
			}
			if _, err := os.Stat(env["DROVER_DATA"]); !os.IsNotExist(err) {
				t.Errorf("the data dir was created (%v): the node started", err)
			}
		})
	}
}

// TestEngineListensOnLoopbackUnlessInsecure: without authentication or TLS
// the node refuses an address beyond loopback (every interface, a public
// address or a host name) before anything starts, saying why and what to do;
// --insecure accepts it, and loopback addresses need nothing.
func TestEngineListensOnLoopbackUnlessInsecure(t *testing.T) {
	for _, args := range [][]string{
		{"--http", ":8080"},
		{"--http", "0.0.0.0:0"},
		{"--listen", "[::]:4322"},
		{"--listen", "10.1.2.3:4322"},
		{"--cluster", "node1.example.com:6332"},
		{"--http", "127.0.0.1:0", "--cluster", ":6332"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			r := engineCmd(t, map[string]string{"DROVER_DATA": dir}, args...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, "listens beyond loopback, and this node has no authentication or TLS yet") ||
				!strings.Contains(r.stderr, "pass --insecure to accept that") {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the data dir was created (%v): the node started", err)
			}
			e := &engineFlags{http: "127.0.0.1:0", listen: "127.0.0.1:0", insecure: true, partitions: 1, payloadLimit: 1,
				getenv: func(k string) string { return map[string]string{"DROVER_DATA": t.TempDir()}[k] }}
			for i := 0; i+1 < len(args); i += 2 {
				*map[string]*string{"--http": &e.http, "--listen": &e.listen, "--cluster": &e.cluster}[args[i]] = args[i+1]
			}
			if _, err := e.options(); err != nil {
				t.Fatalf("with --insecure: %v", err)
			}
		})
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0", "127.1.2.3:0"} {
		if !loopback(addr) {
			t.Errorf("loopback(%q) = false", addr)
		}
	}
}
