package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/config"
	"github.com/droverhq/drover/engine"
	"github.com/droverhq/drover/logs"
	"github.com/droverhq/drover/logship"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
	"github.com/rs/zerolog"
)

// logLevels are the values of engine --log-level.
var logLevels = []string{"debug", "info", "warn", "error"}

// maxReplicas is the most replicas a JetStream stream can have.
const maxReplicas = 5

// EngineMain runs engine, one Drover node, with args (without the program
// name) until SIGINT or SIGTERM, and returns the exit code: ExitOK after a
// clean shutdown (or --help, --version), ExitFailure when the node cannot
// start, ExitUsage for a bad command line, refused before anything starts.
// --help and --version print on stdout; logs and errors go to stderr.
func EngineMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runEngine(ctx, args, os.Getenv, stdout, &lockedWriter{w: stderr})
}

// runEngine is EngineMain with the node's lifetime bounded by ctx and the
// environment read through getenv.
func runEngine(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := &engineFlags{getenv: getenv, stderr: stderr}
	return execute(ctx, e.command(), args, strings.NewReader(""), stdout, stderr)
}

// engineFlags is one invocation of engine: its command line and environment.
type engineFlags struct {
	getenv func(string) string
	stderr io.Writer

	name, dataDir, listen, natsURL, http, logLevel string
	cluster                                        string
	peers, resources, attrHeaders                  []string
	configFile                                     string
	maxSteps                                       uint64
	payloadLimit, replicas, partitions             int
	stepTimeout, grace, retention, triggerTimeout  time.Duration
	foldBelow                                      time.Duration
	sync                                           bus.SyncPolicy
	syncSet                                        bool
	runLog, insecure                               bool
	runLogLines                                    int
	runLogLevel                                    string
	logs                                           logship.Config // the configuration file's logs section

	// wrap, when set, wraps the node's HTTP handler; serving, when set, is
	// called once node's API serves at url (ctl's background node uses both).
	wrap    func(http.Handler) http.Handler
	serving func(url string, node *engine.Node) error
}

func (e *engineFlags) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Run a Drover node",
		Long: `engine runs one Drover node: an embedded NATS server with JetStream (or a
client of an external one with --nats), the coordinator of runs, a step
worker and the HTTP JSON API. Every node runs the same binary; several form a
cluster with --cluster and --peers. ctl --server URL drives a node.

SIGINT or SIGTERM shuts it down cleanly: the API stops, runs in flight get
--grace to finish (then stay unfinished in the journal, for recovery), and
steps being executed are journaled before the bus closes.

Every flag is checked before anything starts.

Exit codes: 0 clean shutdown, 1 the node could not start or serve (data dir
in use, address taken, NATS unreachable), 2 usage error (unknown flag, bad
value, stray argument).

` + environmentHelp(true),
		Example: `  engine --name n1 --data-dir /var/lib/drover --http 127.0.0.1:8080
  DROVER_DATA=/tmp/n1 engine --log-level debug
  engine --name n1 --resource github_api=5000/h,host=api.github.com --resource db=20,builtin=sql.*
  engine --attr-header X-Customer-Id=customer --trigger-timeout 1m
  engine --name n2 --cluster 127.0.0.1:6332 --peers nats://127.0.0.1:6331,nats://127.0.0.1:6333`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unexpected argument %q: engine takes no arguments, only flags", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := e.options()
			if err != nil {
				return err
			}
			return e.serve(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&e.name, "name", "", "node `NAME`: letters, digits, - and _ (default: the host name up to its first dot)")
	f.StringVar(&e.dataDir, "data-dir", "", "`DIR` holding the node's data, its embedded NATS store "+dataDirDefault)
	f.StringVar(&e.http, "http", "127.0.0.1:8080", "`ADDR` (host:port) of the HTTP JSON API; port 0 picks a free one")
	f.StringVar(&e.listen, "listen", "127.0.0.1:4322", "`ADDR` where the embedded NATS accepts clients (\"\" for none; port 0 picks a free one)")
	f.StringVar(&e.natsURL, "nats", "", "`URL` of an external NATS with JetStream; nothing is embedded then")
	f.StringVar(&e.cluster, "cluster", "", "`ADDR` (host:port) where the embedded NATS accepts routes from other nodes (with --peers)")
	f.StringSliceVar(&e.peers, "peers", nil, "route `URLs` of the other nodes' --cluster addresses, comma-separated or repeated (nats://host:port)")
	f.IntVar(&e.partitions, "partitions", 1, "spread new runs over `K` partitions of the journal and the runs index, each with its own stream leader (1 to 64; raising it on a running cluster moves no run)")
	f.BoolVar(&e.runLog, "experimental-run-log", false, "give the journal run logs at once (a run's coordinator entries on one subject rather than one subject per entry sealed after the run); a standalone node has them from the start, a cluster once every node runs a release that reads them (see docs/architecture.md)")
	f.IntVar(&e.replicas, "replicas", 0, "`N` replicas of streams and buckets, 1 to 5 (default: 3 with 3 or more nodes, else 1)")
	e.logLevel = "info"
	f.Var(choiceValue{&e.logLevel, logLevels}, "log-level", "`LEVEL` of the logs on stderr: "+orList(logLevels))
	e.runLogLevel = "info"
	f.Var(choiceValue{&e.runLogLevel, logLevels}, "run-log-level", "`LEVEL` of the run lines kept with each run (ctl logs, ctl runs show): "+orList(logLevels))
	f.IntVar(&e.runLogLines, "run-log-lines", logs.DefaultLimit, "keep at most `N` log lines of one run (ctl logs); past them, a line says the log was cut")
	e.maxSteps = script.DefaultMaxSteps
	addMaxExecSteps(f, &e.maxSteps, "Starlark computation limit per run, as `N` steps (runaway-loop guard)")
	f.IntVar(&e.payloadLimit, "payload-limit", api.DefaultPayloadLimit, "largest step argument, step result, input or run result, in `BYTES`")
	e.stepTimeout, e.grace, e.retention, e.triggerTimeout, e.foldBelow = 30*time.Second, 10*time.Second, 30*24*time.Hour, 30*time.Second, 2*time.Millisecond
	f.Var(durationValue{p: &e.stepTimeout}, "step-timeout", "deadline of one step attempt when the builtin sets none")
	f.Var(durationValue{p: &e.foldBelow}, "fold-below", "a builtin typically this quick has each step journaled once, with its call, and sent to other nodes directly; a step the coordinator had not journaled when it stopped is executed again (see docs/architecture.md)")
	f.Var(durationValue{p: &e.grace, zeroOK: true}, "grace", "on shutdown, how long runs in flight may take to finish (0: interrupt them at once)")
	f.Var(durationValue{p: &e.retention}, "retention", "how long journals and run records are kept (ctl runs pin keeps a run longer)")
	e.sync = bus.SyncAlways
	f.Var(syncValue{&e.sync, &e.syncSet}, "sync", syncHelp)
	f.Var(durationValue{p: &e.triggerTimeout}, "trigger-timeout", "how long POST /v1/run/NAME waits for the run's end before answering 504 (?timeout= overrides)")
	f.StringArrayVar(&e.resources, "resource", nil, "a custom resource `SPEC`, repeatable: NAME=RATE/UNIT[,burst=N] (e.g. github_api=5000/h,host=api.github.com) or NAME=SIZE (a pool, e.g. db=20,builtin=sql.*); options scope=node|cluster|group:NAME")
	f.StringVar(&e.configFile, "config", "", "node configuration `FILE` (YAML): the settings of its integrations, with ${ENV} expanded (default $DROVER_CONFIG; see docs/integrations.md)")
	f.StringArrayVar(&e.attrHeaders, "attr-header", nil, "a request header of POST /v1/run/NAME that becomes a run attribute, repeatable: `HEADER=ATTR` (e.g. X-Customer-Id=customer)")
	f.BoolVar(&e.insecure, "insecure", false, "let --http, --listen or --cluster listen beyond loopback although the node has no authentication or TLS yet")
	cmd.Flags().Bool("version", false, "print engine's version and build, and exit")
	return cmd
}

// loopback reports whether addr (host:port) listens on loopback only: an IP
// address of loopback or "localhost". No host (":8080") is every interface;
// another name is taken as reaching beyond, as it may.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// options checks the flags that pflag could not check alone and builds the
// node's options. Every error is a usage error.
func (e *engineFlags) options() (engine.Options, error) {
	name := e.name
	if name == "" {
		host, _ := os.Hostname()
		name, _, _ = strings.Cut(host, ".")
		if !bus.ValidToken(name) {
			return engine.Options{}, usageErrorf("cannot name the node after the host name %q: pass --name", host)
		}
	} else if !bus.ValidToken(name) {
		return engine.Options{}, usageErrorf("--name %q: a node name cannot be empty or hold dots, spaces, * or >; use letters, digits, - and _", name)
	}
	if !e.insecure {
		for _, l := range []struct{ flag, addr string }{{"--http", e.http}, {"--listen", e.listen}, {"--cluster", e.cluster}} {
			if l.addr != "" && !loopback(l.addr) {
				return engine.Options{}, usageErrorf("%s %s listens beyond loopback, and this node has no authentication or TLS yet: "+
					"anyone who reaches it could deploy scripts, cancel runs and read every input and journal. "+
					"Listen on 127.0.0.1, ::1 or localhost, or pass --insecure to accept that (docs/operations.md#listening-beyond-loopback)", l.flag, l.addr)
			}
		}
	}
	if e.partitions < 1 || e.partitions > bus.MaxPartitions {
		return engine.Options{}, usageErrorf("--partitions %d: want 1 to %d", e.partitions, bus.MaxPartitions)
	}
	if e.replicas < 0 || e.replicas > maxReplicas {
		return engine.Options{}, usageErrorf("--replicas %d: want 1 to %d, or 0 for 3 with 3 or more nodes, else 1", e.replicas, maxReplicas)
	}
	if e.payloadLimit <= 0 {
		return engine.Options{}, usageErrorf("--payload-limit %d: want a number of bytes above 0, such as 1048576", e.payloadLimit)
	}
	if _, err := meter.ParseResources(e.resources); err != nil {
		return engine.Options{}, usageErrorf("--resource: %s", strings.TrimPrefix(err.Error(), "meter: "))
	}
	headerAttrs, err := parseAttrHeaders(e.attrHeaders)
	if err != nil {
		return engine.Options{}, err
	}
	sync, err := syncPolicy(e.sync, e.syncSet, e.getenv)
	if err != nil {
		return engine.Options{}, err
	}
	dir, err := dataDir(e.dataDir, e.getenv)
	if err != nil {
		return engine.Options{}, usageErrorf("%v", err)
	}
	node, err := loadConfig(cmp.Or(e.configFile, e.getenv("DROVER_CONFIG")), e.getenv)
	if err != nil {
		return engine.Options{}, err
	}
	e.logs = node.Logs
	return engine.Options{
		Integrations: node.Integrations, Breakers: node.Breakers, Metrics: node.Metrics, Alerts: node.Alerts,
		Name: name, DataDir: dir, Listen: e.listen, NATSURL: e.natsURL,
		ClusterListen: e.cluster, Peers: e.peers, Replicas: e.replicas, Partitions: e.partitions, Resources: e.resources,
		MaxExecSteps: e.maxSteps, PayloadLimit: e.payloadLimit, StepTimeout: e.stepTimeout, FoldBelow: e.foldBelow, JournalMaxAge: e.retention, Sync: sync,
		HeaderAttrs: headerAttrs, TriggerTimeout: e.triggerTimeout, RunLog: e.runLog, RunLogLines: e.runLogLines, RunLogLevel: e.runLogLevel,
	}, nil
}

// loadConfig reads the node configuration file at path ("" for none), then
// the DROVER_<INTEGRATION>_<SETTING> variables of getenv: the
// configurations of the integrations this build has, and of the breakers.
func loadConfig(path string, getenv func(string) string) (*config.Node, error) {
	lookup := func(k string) (string, bool) { v := getenv(k); return v, v != "" }
	node := &config.Node{}
	var err error
	if path != "" {
		if node, err = config.Load(path, builtins.Default, lookup); err != nil {
			return nil, usageErrorf("%s", strings.TrimPrefix(err.Error(), "config: "))
		}
	}
	if _, err := config.ApplyEnv(node, builtins.Default, lookup); err != nil {
		return nil, usageErrorf("%s", strings.TrimPrefix(err.Error(), "config: "))
	}
	return node, nil
}

// parseAttrHeaders reads --attr-header HEADER=ATTR specs.
func parseAttrHeaders(specs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, spec := range specs {
		header, attr, ok := strings.Cut(spec, "=")
		header, attr = strings.TrimSpace(header), strings.TrimSpace(attr)
		if !ok || header == "" || attr == "" {
			return nil, usageErrorf("--attr-header %q: write HEADER=ATTR, e.g. X-Customer-Id=customer", spec)
		}
		if !validHeaderName(header) {
			return nil, usageErrorf("--attr-header %q: %q is not an HTTP header name (letters, digits and !#$%%&'*+-.^_`|~)", spec, header)
		}
		if err := api.CheckAttrName(attr); err != nil {
			return nil, usageErrorf("--attr-header %q: attribute name %q must be 1 to 64 letters, digits or _", spec, attr)
		}
		header = textproto.CanonicalMIMEHeaderKey(header)
		if prev, dup := m[header]; dup {
			return nil, usageErrorf("--attr-header %q: header %s is already the attribute %s; give each header once", spec, header, prev)
		}
		m[header] = attr
	}
	return m, nil
}

// validHeaderName reports whether s is an HTTP header field name (an RFC 9110
// token).
func validHeaderName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return s != ""
}

// reportDrops writes a line on stderr every 30 s in which the shipper
// dropped or had refused lines, until ctx ends.
func reportDrops(ctx context.Context, s *logship.Shipper, log zerolog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	var last logship.Stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := s.Stats()
		for _, d := range []struct {
			name      string
			now, then logship.DestinationStats
		}{{"logstash", st.Logstash, last.Logstash}, {"elasticsearch", st.Elasticsearch, last.Elasticsearch}} {
			if dropped, failed := d.now.Dropped-d.then.Dropped, d.now.Failed-d.then.Failed; dropped+failed > 0 {
				log.Warn().Str("destination", d.name).Uint64("dropped", dropped).Uint64("refused", failed).Int("queued", d.now.Queued).
					Msg("log shipping: lines lost in the last 30s (the destination is down or slow; runs are not affected)")
			}
		}
		last = st
	}
}

// serve starts the node and its HTTP API, and stops them cleanly once ctx is
// done.
func (e *engineFlags) serve(ctx context.Context, opts engine.Options) error {
	out := e.stderr
	shipper, err := logship.New(e.logs, logship.Options{Logger: zerolog.New(e.stderr).With().Timestamp().Str("node", opts.Name).Logger()})
	if err != nil {
		return failure(err)
	}
	if e.logs.Enabled() {
		out = zerolog.MultiLevelWriter(e.stderr, shipper)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := shipper.Close(ctx); err != nil {
				fmt.Fprintf(e.stderr, "engine: shipping the last log lines: %v\n", err)
			}
		}()
	}
	log := telemetry.NewLogger(out, e.logLevel)
	opts.Logger, opts.LogOutput = &log, out
	if e.logs.Enabled() {
		go reportDrops(ctx, shipper, zerolog.New(e.stderr).With().Timestamp().Str("node", opts.Name).Logger())
	}
	shutdownTracing, err := telemetry.Setup(ctx, "drover-engine", opts.Name)
	if err != nil {
		return failure(fmt.Errorf("cannot set up tracing from the OTEL_* variables: %w", err))
	}
	defer shutdownTracing(context.Background())
	ln, err := net.Listen("tcp", e.http)
	if err != nil {
		return failure(fmt.Errorf("--http %s: %w (is another node serving there? pick another address, or port 0 for a free one)", e.http, err))
	}
	opts.AdvertiseHTTP = "http://" + ln.Addr().String()
	node, err := engine.NewNode(ctx, opts)
	if err != nil {
		ln.Close()
		if errors.Is(err, bus.ErrDataDirInUse) {
			return failure(err) // the message names the process and what to do
		}
		return failure(fmt.Errorf("cannot start the node on %s: %s", opts.DataDir, strings.TrimPrefix(err.Error(), "engine: ")))
	}
	// Starting read parts of the journal back (the server's expiry and
	// de-duplication state): give that memory to the system now, not over
	// the next minutes, so that the node's memory shows what it holds.
	debug.FreeOSMemory()
	handler := node.Handler()
	if e.wrap != nil {
		handler = e.wrap(handler)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(node.CloseStreams) // Shutdown waits for open event streams
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info().Str("http", opts.AdvertiseHTTP).Str("nats", node.NATSURL()).Str("cluster", node.ClusterURL()).
		Str("data_dir", opts.DataDir).Msg("serving")

	var serveErr, servingErr error
	if e.serving != nil {
		servingErr = e.serving(opts.AdvertiseHTTP, node)
	}
	if servingErr == nil {
		select {
		case <-ctx.Done():
		case serveErr = <-served:
		}
	}
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), e.grace)
	defer cancel()
	srv.Shutdown(sctx)
	if err := node.Close(sctx); err != nil {
		log.Error().Err(err).Msg("closing the node")
	}
	if servingErr != nil {
		return failure(servingErr)
	}
	if serveErr != nil {
		return failure(fmt.Errorf("the HTTP API stopped: %w", serveErr))
	}
	return nil
}
