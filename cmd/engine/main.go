// Command engine runs one Drover node: embedded NATS (or an external one),
// coordinator, step worker and the HTTP JSON API.
//
//	engine --name n1 --data-dir /var/lib/drover --http 127.0.0.1:8080
//
// SIGINT or SIGTERM shuts it down cleanly: new runs are refused, runs in flight
// get --grace to finish (then stay unfinished in the journal for recovery), and
// steps being executed are journaled before the bus closes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/droverhq/drover/engine"
	_ "github.com/droverhq/drover/starlark/builtins/all"
	"github.com/droverhq/drover/telemetry"
)

func main() {
	fs := flag.NewFlagSet("engine", flag.ContinueOnError)
	host, _ := os.Hostname()
	var (
		name        = fs.String("name", host, "node name (letters, digits, - and _)")
		dataDir     = fs.String("data-dir", "drover-data", "directory of the embedded NATS store")
		listen      = fs.String("listen", "127.0.0.1:4322", "address where the embedded NATS accepts clients (\"\" for none)")
		natsURL     = fs.String("nats", "", "external NATS URL; when set no server is embedded")
		httpAddr    = fs.String("http", "127.0.0.1:8080", "address of the HTTP JSON API")
		logLevel    = fs.String("log-level", "info", "debug, info, warn or error")
		maxSteps    = fs.Uint64("max-exec-steps", 10_000_000, "Starlark computation limit per run (runaway-loop guard)")
		payload     = fs.Int("payload-limit", 1<<20, "largest step argument, step result, input or run result, in bytes")
		stepTO      = fs.Duration("step-timeout", 30*time.Second, "deadline of one step attempt when the builtin sets none")
		grace       = fs.Duration("grace", 10*time.Second, "on shutdown, how long runs in flight may take to finish")
		clusterAddr = fs.String("cluster", "", "address where the embedded NATS accepts routes from other nodes (host:port; set with --peers)")
		peers       = fs.String("peers", "", "comma-separated route URLs of other nodes' --cluster addresses (nats://host:port,...)")
		replicas    = fs.Int("replicas", 0, "replicas of streams and buckets (0: 3 when 3 or more nodes, else 1)")
		retain      = fs.Duration("retention", 30*24*time.Hour, "how long journals and run records are kept (ctl runs pin keeps a run longer)")
		triggerTO   = fs.Duration("trigger-timeout", 30*time.Second, "how long POST /v1/run/NAME waits for the run's end before answering 504 (?timeout= overrides)")
	)
	var attrHeaders listFlag
	fs.Var(&attrHeaders, "attr-header", "a request header of POST /v1/run/NAME that becomes a run attribute, repeatable: HEADER=ATTR (e.g. X-Customer-Id=customer)")
	var resources listFlag
	fs.Var(&resources, "resource", "a custom resource, repeatable: NAME=RATE/UNIT[,burst=N] (e.g. github_api=5000/h,host=api.github.com) or NAME=SIZE (a pool, e.g. db=20,builtin=sql.*); options scope=node|cluster|group:NAME")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	headerAttrs := map[string]string{}
	for _, spec := range attrHeaders {
		header, attr, ok := strings.Cut(spec, "=")
		if !ok || strings.TrimSpace(header) == "" || strings.TrimSpace(attr) == "" {
			fmt.Fprintf(os.Stderr, "engine: --attr-header %q: write HEADER=ATTR, e.g. X-Customer-Id=customer\n", spec)
			os.Exit(2)
		}
		headerAttrs[strings.TrimSpace(header)] = strings.TrimSpace(attr)
	}
	log := telemetry.NewLogger(os.Stderr, *logLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	shutdownTracing, err := telemetry.Setup(ctx, "drover-engine", *name)
	if err != nil {
		log.Fatal().Err(err).Msg("tracing setup")
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "engine: --http %s: %v\n", *httpAddr, err)
		os.Exit(1)
	}
	node, err := engine.NewNode(ctx, engine.Options{
		Name: *name, DataDir: *dataDir, Listen: *listen, NATSURL: *natsURL, Logger: &log,
		ClusterListen: *clusterAddr, Peers: splitList(*peers), Replicas: *replicas, Resources: resources,
		AdvertiseHTTP: "http://" + ln.Addr().String(),
		MaxExecSteps:  *maxSteps, PayloadLimit: *payload, StepTimeout: *stepTO, JournalMaxAge: *retain,
		HeaderAttrs: headerAttrs, TriggerTimeout: *triggerTO,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: node.Handler(), ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(node.CloseStreams) // Shutdown waits for open event streams
	go srv.Serve(ln)
	log.Info().Str("http", "http://"+ln.Addr().String()).Str("nats", node.NATSURL()).Str("cluster", node.ClusterURL()).Msg("serving")

	<-ctx.Done()
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	srv.Shutdown(sctx)
	node.Close(sctx)
	shutdownTracing(context.Background())
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
