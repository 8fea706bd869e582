package engine

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/placement"
	"github.com/droverhq/drover/starlark/builtins"
)

// A Node is one Drover engine: it coordinates runs, executes steps, and serves
// the API. Create it with NewNode and stop it with Close.
type Node struct {
	opts   Options
	bus    *bus.Bus
	log    zerolog.Logger
	tracer trace.Tracer
	meter  meter.Meter
	env    *stepEnv

	programs sync.Map // script hash → *program
	stored   sync.Map // script hashes known to be in the scripts bucket
	deps     deployments
	globals  starlark.StringDict

	mu       sync.Mutex
	active   map[string]*run        // runs this node coordinates
	sleeping map[string]*time.Timer // parked runs' timers
	// stepCancels cancels steps this node executes, by run, on cancellation.
	stepCancels map[string]map[*int]context.CancelFunc
	stopCancels func()
	closing     bool
	runsWG      sync.WaitGroup

	stepsWG    sync.WaitGroup // steps the worker is executing
	stopWorker func()

	replyPrefix string
	replyNext   atomic.Uint64
	replies     sync.Map // token → chan ResultEntry
	stopReplies func()

	baseCtx    context.Context
	cancelBase context.CancelCauseFunc

	view        *placement.MemView // live nodes' readings, when placement is Adaptive
	lastReading atomic.Pointer[meter.Reading]

	// peerSpecs are the bindings of resources only peers declare (see
	// notePeerBindings); peerBindings publishes them to demands without a lock.
	// streamsCtx ends open event streams (CloseStreams).
	streamsCtx  context.Context
	stopStreams context.CancelFunc

	peerMu       sync.Mutex
	peerSpecs    []meter.ResourceSpec
	peerBindings atomic.Pointer[[]meter.ResourceSpec]
	started      time.Time
	nodesMu      sync.Mutex
	nodes        map[string]NodeInfo // live nodes from their heartbeats
	lostMu       sync.Mutex
	lostWaiters  map[string][]chan struct{} // closed when that node is lost
}

// NewNode starts a node: it opens the bus (embedded NATS by default), creates
// the streams and buckets, and starts the step worker.
func NewNode(ctx context.Context, opts Options) (*Node, error) {
	opts = opts.withDefaults()
	if !bus.ValidToken(opts.Name) {
		return nil, fmt.Errorf("engine: node name %q must be non-empty with no dots, spaces or wildcards", opts.Name)
	}
	for header, attr := range opts.HeaderAttrs {
		if err := checkAttrKey(attr); err != nil {
			return nil, fmt.Errorf("engine: header %s: %w", header, err)
		}
	}
	b, err := bus.Open(ctx, bus.Options{
		Name: opts.Name, DataDir: opts.DataDir, URL: opts.NATSURL, Listen: opts.Listen,
		ClusterListen: opts.ClusterListen, Peers: opts.Peers, Replicas: opts.Replicas,
		JournalMaxAge: opts.JournalMaxAge,
	})
	if err != nil {
		return nil, err
	}
	n := &Node{
		opts:     opts,
		bus:      b,
		log:      opts.Logger.With().Str("node", opts.Name).Logger(),
		tracer:   otel.Tracer("github.com/droverhq/drover/engine"),
		active:   map[string]*run{},
		sleeping: map[string]*time.Timer{},

		stepCancels: map[string]map[*int]context.CancelFunc{},
		started:     time.Now().UTC(),
		nodes:       map[string]NodeInfo{},
		lostWaiters: map[string][]chan struct{}{},
	}
	n.meter.Node = opts.Name
	specs, err := meter.ParseResources(opts.Resources)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("engine: %w", err)
	}
	n.baseCtx, n.cancelBase = context.WithCancelCause(context.Background())
	n.streamsCtx, n.stopStreams = context.WithCancel(context.Background())
	if n.meter.Resources, err = meter.NewResources(specs, meter.ResourcesOptions{Shared: n.sharedLimit}); err != nil {
		b.Close()
		return nil, fmt.Errorf("engine: %w", err)
	}
	if n.opts.Placement == nil {
		n.view = placement.NewMemView(nodeTimeout, nil)
		n.opts.Placement = placement.NewAdaptive(n.view, placement.Options{})
	}
	n.publishReading()
	n.env = &stepEnv{n: n}
	n.replyPrefix = "drover.reply." + opts.Name + "." + strconv.FormatInt(int64(newNonce()), 36) + "."
	if n.stopReplies, err = b.Subscribe(n.replyPrefix+"*", n.onReply); err != nil {
		b.Close()
		return nil, err
	}
	if n.stopCancels, err = b.Subscribe(cancelPrefix+"*", n.onCancel); err != nil {
		b.Close()
		return nil, err
	}
	if n.stopWorker, err = b.ConsumeSteps(ctx, opts.Name, n.handleStep); err != nil {
		b.Close()
		return nil, err
	}
	if !opts.NoRecovery {
		n.recoverRuns(ctx)
	}
	go n.heartbeat(n.baseCtx)
	go n.watchDeployments(n.baseCtx)
	go n.watchNodes(n.baseCtx)
	n.log.Info().Bool("embedded", b.Embedded()).Str("nats", b.ClientURL()).Msg("node started")
	return n, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.opts.Name }

// ClusterURL is the route URL other nodes pass in --peers ("" if not clustered).
func (n *Node) ClusterURL() string { return n.bus.ClusterURL() }

// NATSURL is where NATS clients reach this node's bus ("" if in-process only).
func (n *Node) NATSURL() string { return n.bus.ClientURL() }

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
	for id, t := range n.sleeping {
		t.Stop() // parked runs stay parked in the journal; recovery wakes them
		delete(n.sleeping, id)
	}
	n.mu.Unlock()

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
	n.stopWorker()
	n.stepsWG.Wait()
	n.stopReplies()
	n.stopCancels()
	n.cancelBase(errShutdown)
	n.log.Info().Msg("node stopped")
	return n.bus.Close()
}

// stepEnv is the builtins.Env of steps executed on this node.
type stepEnv struct{ n *Node }

func (e *stepEnv) Node() string             { return e.n.opts.Name }
func (e *stepEnv) HTTPClient() *http.Client { return e.n.opts.HTTPClient }
func (e *stepEnv) KV() builtins.KVStore     { return dataKV{e.n.bus.Bucket(bus.DataBucket)} }
func (e *stepEnv) Publish(_ context.Context, subject string, payload []byte) error {
	return e.n.bus.Publish(subject, nil, payload)
}

// dataKV stores kv.* values in the data bucket; user keys are encoded so that
// any printable key is allowed.
type dataKV struct{ kv *bus.KV }

func (d dataKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, _, err := d.kv.Get(ctx, bus.EncodeKey(key))
	if err != nil {
		if isNotFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return v, true, nil
}

func (d dataKV) Put(ctx context.Context, key string, value []byte) error {
	_, err := d.kv.Put(ctx, bus.EncodeKey(key), value)
	return err
}

func (d dataKV) Delete(ctx context.Context, key string) error {
	return d.kv.Delete(ctx, bus.EncodeKey(key))
}
