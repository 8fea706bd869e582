package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/server"
	"github.com/droverhq/drover/breaker"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/deploy"
	"github.com/droverhq/drover/dispatch"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/limits"
	"github.com/droverhq/drover/logs"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/metrics"
	"github.com/droverhq/drover/placement"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
)

// The read side of the API is served by the runs store and the scripts side
// by the deployer; Node embeds them as these interfaces, so that their API
// methods, and only those, are Node's.
type (
	runsAPI interface {
		Get(ctx context.Context, id string) (*api.RunDetail, error)
		List(ctx context.Context, f api.ListFilter) ([]api.Run, error)
		Export(ctx context.Context, id string) (*api.Export, error)
		Pin(ctx context.Context, id string) (*api.Run, error)
		RunScript(ctx context.Context, id string) (*api.ScriptVersion, error)
	}
	scriptsAPI interface {
		Deploy(ctx context.Context, req api.DeployRequest) (*api.Deployment, error)
		Rollback(ctx context.Context, name string, version int, by string) (*api.Deployment, error)
		Scripts(ctx context.Context) ([]api.Deployment, error)
		History(ctx context.Context, name string) ([]api.Deployment, error)
		ScriptSource(ctx context.Context, name string) (*api.ScriptVersion, error)
		ScriptVersion(ctx context.Context, name string, version int) (*api.ScriptVersion, error)
		ReplayCheck(ctx context.Context, id string, s *api.Script) (*api.ReplayReport, error)
	}
)

// A Node is one Drover engine: it coordinates runs, executes steps, and serves
// the API. Create it with NewNode and stop it with Close.
//
// Locks: n.mu guards the runs this node coordinates and its parked runs'
// timers; a run's own mu guards its record. n.mu is never held while another
// lock is taken or the bus is called.
type Node struct {
	runsAPI
	scriptsAPI

	opts         Options
	bus          *bus.Bus
	log          zerolog.Logger
	tracer       trace.Tracer
	calls        builtins.CallFunc // a step call through the interceptors (chains)
	taps         *logs.Taps        // the live tails followed in the cluster
	metrics      *metrics.Metrics  // DogStatsD and Prometheus
	gauges       gauges
	alerts       *alert.Alerts // the alert rules (Options.Alerts), or nil
	breakerSeen  breakerChanges
	placing      atomic.Int64 // steps being placed (metrics' queue depth, on each heartbeat)
	runLogLevel  zerolog.Level
	meter        meter.Meter
	journal      *journal.Store
	sealer       *journal.Sealer // seals ended runs' journals
	runs         *runs.Store
	scripts      *deploy.Store
	deployer     *deploy.Deployer
	compiler     *script.Compiler
	cluster      *cluster.Membership
	view         *placement.MemView // live nodes' readings, when placement is Adaptive
	peers        meter.PeerBindings
	dispatch     *dispatch.Dispatcher
	profiles     *placement.Profiles // builtins as measured here: the placement policy's when it learns
	integrations *builtins.Opened
	breakers     *breaker.Set
	stopTriggers context.CancelFunc // stops taking messages that start runs
	triggersDone func()             // waits for the messages taken to be acknowledged or handed back
	worker       *worker

	baseCtx    context.Context // ends when the node stops
	cancelBase context.CancelCauseFunc
	// streams ends open event streams when the node closes.
	streams     context.Context
	stopStreams context.CancelFunc
	server      *server.Server

	mu       sync.Mutex
	active   map[string]*run        // runs this node coordinates
	adopting map[string]*adoption   // runs being adopted, until they are active
	starting map[string]bool        // runs being started here, until they are active
	sleeping map[string]*time.Timer // parked runs' timers
	closing  bool
	runsWG   sync.WaitGroup

	stopCancels func()
}

var _ api.API = (*Node)(nil)

// NewNode starts a node: it opens the bus (embedded NATS by default), creates
// the streams and buckets, starts the step worker, adopts the unfinished runs
// it coordinated, and joins the cluster.
func NewNode(ctx context.Context, opts Options) (*Node, error) {
	opts = opts.withDefaults()
	if !bus.ValidToken(opts.Name) {
		return nil, fmt.Errorf("engine: node name %q must be non-empty with no dots, spaces or wildcards", opts.Name)
	}
	specs, err := meter.ParseResources(opts.Resources)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	m, err := metrics.New(opts.Metrics, opts.Name)
	if err != nil {
		return nil, fmt.Errorf("engine: metrics: %w", err)
	}
	runLogLevel := zerolog.InfoLevel
	if opts.RunLogLevel != "" {
		if runLogLevel, err = logs.ParseLevel(opts.RunLogLevel); err != nil {
			return nil, fmt.Errorf("engine: run log level: %w", err)
		}
	}
	b, err := bus.Open(ctx, bus.Options{
		Name: opts.Name, DataDir: opts.DataDir, URL: opts.NATSURL, Listen: opts.Listen,
		ClusterListen: opts.ClusterListen, Peers: opts.Peers, Replicas: opts.Replicas, JournalMaxAge: opts.JournalMaxAge, Sync: opts.Sync,
		Partitions: opts.Partitions, RunLog: opts.RunLog || opts.NATSURL+opts.Listen+opts.ClusterListen == "" && len(opts.Peers) == 0, // nobody else can connect
	})
	if err != nil {
		return nil, err
	}
	n := &Node{
		opts:        opts,
		bus:         b,
		log:         opts.Logger.With().Str("node", opts.Name).Logger(),
		runLogLevel: runLogLevel,
		metrics:     m,
		gauges:      gauges{m: m},
		tracer:      otel.Tracer("github.com/droverhq/drover/engine"),
		journal:     journal.NewStore(b),
		scripts:     deploy.NewStore(b),
		compiler:    script.NewCompiler(opts.Registry),
		active:      map[string]*run{},
		adopting:    map[string]*adoption{},
		starting:    map[string]bool{},
		sleeping:    map[string]*time.Timer{},
	}
	n.baseCtx, n.cancelBase = context.WithCancelCause(context.Background())
	n.streams, n.stopStreams = context.WithCancel(context.Background())
	n.runs = runs.NewStore(runs.Options{Bus: b, Scripts: n.scripts, Retention: opts.JournalMaxAge, Closing: n.streams})
	n.deployer = deploy.NewDeployer(deploy.Options{Bus: b, Store: n.scripts, Compiler: n.compiler, Runs: n.runs,
		Registry: opts.Registry, MaxExecSteps: opts.MaxExecSteps, PayloadLimit: opts.PayloadLimit, Logger: &n.log})
	n.runsAPI, n.scriptsAPI = n.runs, n.deployer
	if n.server, err = server.New(n, server.Options{PayloadLimit: opts.PayloadLimit, HeaderAttrs: opts.HeaderAttrs,
		TriggerTimeout: opts.TriggerTimeout, EventsKeepAlive: opts.EventsKeepAlive, Logger: &n.log}); err != nil {
		b.Close()
		return nil, err
	}
	n.meter.Node = opts.Name
	if n.opts.Placement == nil {
		n.view = placement.NewMemView(opts.HeartbeatEvery*cluster.NodeTimeout/cluster.HeartbeatEvery, nil)
		n.opts.Placement = placement.NewAdaptive(n.view, placement.Options{})
	}
	n.profiles = placement.NewProfiles(0)
	if l, ok := n.opts.Placement.(placement.Learner); ok {
		n.profiles = l.Profiles()
	}
	isLive := func(node string) bool { return n.cluster.IsLive(node) }
	shared := limits.New(limits.Options{Bus: b, Node: opts.Name, IsLive: isLive, Context: n.baseCtx, Logger: &n.log})
	n.integrations = builtins.OpenIntegrations(ctx, n.opts.Registry, opts.Integrations)
	n.breakers = breaker.New(opts.Breakers)
	if n.alerts, err = n.newAlerts(n.integrations); err != nil {
		n.integrations.Close()
		b.Close()
		return nil, fmt.Errorf("engine: %w", err)
	}
	n.breakerSeen.alerts = n.alerts
	n.checkIntegrations(ctx)
	if specs, err = withDeclared(specs, n.integrations.DeclaredResources()); err == nil {
		n.meter.Resources, err = meter.NewResources(specs, meter.ResourcesOptions{Shared: shared})
	}
	if err != nil {
		n.integrations.Close()
		b.Close()
		return nil, fmt.Errorf("engine: %w", err)
	}
	n.cluster = cluster.New(cluster.Options{Bus: b, Name: opts.Name, HTTP: opts.AdvertiseHTTP, Logger: &n.log, Features: slices.Concat(journal.Features, []string{dispatch.Feature}),
		Integrations: n.integrations.Statuses,
		Breakers: func() []breaker.Status {
			st := n.breakers.Statuses()
			n.gauges.breakers(st)
			n.breakerSeen.observe(st)
			return st
		},
		HeartbeatEvery: opts.HeartbeatEvery, Reading: n.readMeter, OnPeer: n.onPeer, OnLost: n.onLost,
		Upgrades: []cluster.Upgrade{{Feature: journal.FeatureRunLog, Apply: b.EnableRunLog}}})
	n.worker = newWorker(n)
	fail := func(err error) (*Node, error) {
		n.integrations.Close()
		b.Close()
		return nil, err
	}
	if n.dispatch, err = dispatch.New(dispatch.Options{Bus: b, Journal: n.journal, Cluster: n.cluster, Node: opts.Name, Nonce: newNonce(), Logger: &n.log}); err != nil {
		return fail(err)
	}
	if n.stopCancels, err = b.Subscribe(bus.CancelSubject("*"), n.onCancel); err != nil {
		return fail(err)
	}
	if n.taps, err = logs.WatchTaps(n.baseCtx, b, &n.log); err != nil {
		return fail(err)
	}
	if err = n.worker.start(ctx); err != nil {
		return fail(err)
	}
	if err := n.cluster.Run(n.baseCtx); err != nil {
		n.worker.stop()
		return fail(err)
	}
	n.sealer = n.journal.NewSealer(journal.SealerOptions{Logger: &n.log})
	go n.sealer.Run(n.baseCtx, 2*time.Second)
	if !opts.NoRecovery {
		n.recoverRuns(ctx)
	}
	go n.deployer.Watch(n.baseCtx)
	go n.watchIntegrations(n.baseCtx)
	var tctx context.Context
	tctx, n.stopTriggers = context.WithCancel(n.baseCtx)
	n.triggersDone = func() {}
	if !opts.NoTriggers {
		n.triggersDone = n.startTriggers(tctx)
	}
	n.log.Info().Bool("embedded", b.Embedded()).Str("nats", b.ClientURL()).Msg("node started")
	return n, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.opts.Name }

// ClusterURL is the route URL other nodes pass in --peers ("" if not clustered).
func (n *Node) ClusterURL() string { return n.bus.ClusterURL() }

// NATSURL is where NATS clients reach this node's bus ("" if in-process only).
func (n *Node) NATSURL() string { return n.bus.ClientURL() }

// CloseStreams ends every open event stream with a shutting_down error event,
// so that clients reconnect elsewhere. Call it when the HTTP server shuts down
// (http.Server.RegisterOnShutdown): Shutdown waits for open responses, and a
// stream is open until its run ends.
func (n *Node) CloseStreams() { n.server.CloseStreams() }

// Close stops the node. New runs are refused; runs in flight get until ctx ends
// to finish, then are interrupted without being failed: their journals stay
// unfinished, ready for recovery. Steps the worker is executing finish and are
// journaled before the bus closes. Nothing acknowledged is lost.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return nil
	}
	n.closing = true
	n.stopTriggers()
	for id, t := range n.sleeping {
		t.Stop() // parked runs stay parked in the journal; recovery wakes them
		delete(n.sleeping, id)
	}
	n.mu.Unlock()
	n.triggersDone()

	done := make(chan struct{})
	go func() { n.runsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.log.Warn().Msg("interrupting runs still in flight; their journals are kept for recovery")
		n.cancelBase(errShutdown)
		<-done
	}
	n.stopStreams()
	n.worker.stop()
	n.metrics.Close()
	n.alerts.Close()
	if err := n.integrations.Close(); err != nil {
		n.log.Warn().Err(err).Msg("closing integrations")
	}
	n.dispatch.Close()
	n.stopCancels()
	n.cancelBase(errShutdown)
	n.sealer.Wait()
	n.log.Info().Msg("node stopped")
	return n.bus.Close()
}

// withDeclared returns the operator's resource specs and those the node's
// integrations declare, the operator's winning by name.
func withDeclared(specs []meter.ResourceSpec, declared []string) ([]meter.ResourceSpec, error) {
	more, err := meter.ParseResources(declared)
	if err != nil {
		return nil, fmt.Errorf("a resource an integration declares: %w", err)
	}
	for _, d := range more {
		if !slices.ContainsFunc(specs, func(s meter.ResourceSpec) bool { return s.Name == d.Name }) {
			specs = append(specs, d)
		}
	}
	return specs, nil
}

// IntegrationCheckEvery is how often a node checks its integrations again.
const IntegrationCheckEvery = 30 * time.Second

// checkIntegrations checks the node's integrations and logs each one that
// fails, saying why, or has nothing to connect to.
func (n *Node) checkIntegrations(ctx context.Context) {
	for _, st := range n.integrations.Check(ctx) {
		switch st.State {
		case builtins.StateFailing:
			n.log.Error().Str("integration", st.Name).Msg(st.Error)
		case builtins.StateUnconfigured:
			n.log.Info().Str("integration", st.Name).Str("why", st.Error).Msg("integration not configured")
		}
	}
}

// watchIntegrations checks the node's integrations every
// IntegrationCheckEvery until ctx ends.
func (n *Node) watchIntegrations(ctx context.Context) {
	t := time.NewTicker(IntegrationCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.checkIntegrations(ctx)
		case <-ctx.Done():
			return
		}
	}
}

// readMeter reads this node's meter for a heartbeat (meter.ReadEvery) and
// feeds this node's placement view.
func (n *Node) readMeter() meter.Reading {
	r := n.meter.ReadEvery(n.opts.HeartbeatEvery)
	n.gauges.resources(r)
	n.metrics.QueueDepth(int(n.placing.Load()))
	if n.view != nil {
		n.view.Put(r)
	}
	return r
}

// onLost forgets a lost peer's readings and takes over the runs it
// coordinated (with the other survivors: each run is adopted by one).
func (n *Node) onLost(node string) {
	if n.view != nil {
		n.view.Delete(node)
	}
	if n.reportsLosses() {
		n.alerts.NodeLost(node)
	}
	n.cluster.TakeOver(n.baseCtx, node, n.runs.Running, n.adopt)
}

// onPeer takes a peer's reading from its heartbeat.
func (n *Node) onPeer(r meter.Reading) {
	if n.view != nil {
		n.view.Put(r)
	}
	n.peers.Note(r, n.meter.Resources)
	n.alerts.NodeReturned(r.Node) // resolves a loss reported, if any
}

// cancelReason says why a run's context ended.
func cancelReason(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), errShutdown) {
		return "node shutting down"
	}
	return "run cancelled"
}

// newNonce returns a random number telling this process from earlier ones.
func newNonce() string {
	var b [8]byte
	rand.Read(b[:])
	return strconv.FormatUint(binary.LittleEndian.Uint64(b[:]), 36)
}
