package engine

import (
	"cmp"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/breaker"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/metrics"
	"github.com/droverhq/drover/placement"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
)

// Options configures a Node. The zero value runs an embedded, in-process-only
// node whose data lives in a temporary directory; a zero field takes its
// default.
type Options struct {
	// Name identifies the node (default: the host name up to its first dot).
	Name string
	// DataDir holds the embedded NATS store; empty means a temporary directory.
	DataDir string
	// NATSURL connects to an external NATS instead of embedding one.
	NATSURL string
	// Listen is where the embedded NATS accepts clients (host:port); empty
	// means no listener.
	Listen string
	// ClusterListen and Peers join the embedded NATS servers of several nodes
	// into one cluster (see bus.Options); Replicas overrides the replication
	// of streams and buckets (0: 3 from 3 nodes, else 1).
	ClusterListen string
	Peers         []string
	Replicas      int
	// AdvertiseHTTP is the URL of this node's HTTP API, published in its
	// heartbeat (cmd/engine sets it once it listens).
	AdvertiseHTTP string
	// Registry holds the builtins scripts can call (default builtins.Default).
	Registry *builtins.Registry
	// Integrations are the configurations of the registry's integrations, by
	// name, as config.Load returns them; one without a configuration opens
	// with its defaults. The node opens, provisions and checks them all as
	// it starts (a failure is logged and shown, not fatal), checks them
	// again every IntegrationCheckEvery, and closes them when it stops.
	Integrations map[string]any
	// NoTriggers leaves the integrations' triggers (builtins.Triggerer:
	// queues that start runs) off: ctl's nodes, which should not consume a
	// queue because a command ran, set it.
	NoTriggers bool
	// Interceptors wrap every step attempt the node executes, outermost
	// first, around its circuit breakers (builtins.Interceptor): metrics,
	// audit, a policy of one's own.
	Interceptors []builtins.Interceptor
	// Metrics configures the node's metrics: DogStatsD (an address, or the
	// DD_AGENT_HOST / DD_DOGSTATSD_URL variables) and GET /metrics
	// (Prometheus, on by default).
	Metrics metrics.Config
	// Alerts are the node's alert rules (a run failed, a breaker open for
	// long, a node lost), notified through its slack and pagerduty
	// integrations.
	Alerts alert.Config
	// Breakers configures the node's circuit breakers, one per target its
	// steps reach (builtins.Step.Target; package breaker).
	Breakers breaker.Config
	// Placement chooses the node of each step. Nil means the production
	// policy (placement.Adaptive) over the live nodes' meters.
	Placement placement.Policy
	// Resources declares this node's custom resources (rate limits, pools),
	// in meter.ParseResource syntax, e.g. "github_api=5000/h,host=api.github.com".
	Resources []string
	// Logger receives the node's structured logs (default: none).
	Logger *zerolog.Logger
	// LogOutput receives the lines of the runs this node coordinates too
	// (JSON, one per line), at Logger's level or above: the output Logger
	// writes to (default: none). Run lines always go to the bus (package
	// logs), at RunLogLevel or above.
	LogOutput io.Writer
	// RunLogLevel is the lowest level of the run lines kept on the bus:
	// debug, info (the default), warn or error.
	RunLogLevel string
	// RunLogLines bounds how many lines one run keeps on the bus (default
	// logs.DefaultLimit); past it, a marker line says the log was cut.
	RunLogLines int
	// HTTPClient is used by http.* steps (default: a pooled client).
	HTTPClient *http.Client

	// MaxExecSteps bounds the Starlark computation of one run, against runaway
	// loops (default script.DefaultMaxSteps, 10,000,000).
	MaxExecSteps uint64
	// RunLog gives the journal run logs at once: each run's coordinator
	// entries on one subject, its log (bus.Options.RunLog). Without it, a
	// standalone node (embedded NATS, no peers, no cluster listener) has them
	// from the start, and a cluster once every live node announces
	// journal.FeatureRunLog (cluster.Upgrade).
	RunLog bool
	// Partitions is how many partitions of the journal and the runs index
	// this node makes and spreads its new runs over (default 1; see
	// bus.Options.Partitions).
	Partitions int
	// PayloadLimit bounds a step's arguments and result, a run's input and its
	// result, in bytes (default api.DefaultPayloadLimit).
	PayloadLimit int
	// StepTimeout bounds one attempt of a step that sets no deadline (default 30s).
	StepTimeout time.Duration
	// FoldBelow is the longest a builtin may typically take for its steps'
	// calls to be journaled with their results, in one entry, and sent to
	// another node directly (default 2ms): should the coordinator stop
	// before the result is written, such a step is executed again. A longer
	// step journals its call first and goes through the executing node's
	// inbox, its result written by that node.
	FoldBelow time.Duration
	// JournalMaxAge is how long journals are kept (default 30 days).
	JournalMaxAge time.Duration
	// Sync is when an embedded server's writes reach the disk, and so what
	// an acknowledged step means on power loss (see bus.SyncPolicy; the
	// zero value is the interval policy, engine and ctl default to always).
	Sync bus.SyncPolicy
	// HeaderAttrs maps request headers of POST /v1/run/{name} to run
	// attributes, e.g. {"X-Customer-Id": "customer"}.
	HeaderAttrs map[string]string
	// TriggerTimeout is how long POST /v1/run/{name} waits for the run's end
	// before answering 504 (default 30s; ?timeout= overrides it).
	TriggerTimeout time.Duration
	// EventsKeepAlive is how long a run's event stream may stay silent before
	// the node sends a comment line, so that proxies keep the connection
	// open (default 15s).
	EventsKeepAlive time.Duration
	// HeartbeatEvery is how often the node publishes its heartbeat and meter
	// reading (default cluster.HeartbeatEvery, 1s).
	HeartbeatEvery time.Duration
	// NoRecovery skips adopting this node's unfinished runs at start (ctl's
	// read-only commands use it: they should not run anything).
	NoRecovery bool
	// AlwaysDispatch dispatches even co-located steps to the node's own
	// worker (directly or through its inbox, as another node's); benchmarks
	// and tests use it to measure those paths.
	AlwaysDispatch bool
}

func (o Options) withDefaults() Options {
	if o.Name == "" {
		host, _ := os.Hostname()
		if o.Name, _, _ = strings.Cut(host, "."); o.Name == "" {
			o.Name = "drover"
		}
	}
	if o.Registry == nil {
		o.Registry = builtins.Default
	}
	if o.Logger == nil {
		nop := zerolog.Nop()
		o.Logger = &nop
	}
	if o.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		o.HTTPClient = &http.Client{Transport: tr}
	}
	o.MaxExecSteps = cmp.Or(o.MaxExecSteps, script.DefaultMaxSteps)
	o.PayloadLimit = cmp.Or(o.PayloadLimit, api.DefaultPayloadLimit)
	o.StepTimeout = cmp.Or(o.StepTimeout, 30*time.Second)
	o.FoldBelow = cmp.Or(o.FoldBelow, 2*time.Millisecond)
	o.EventsKeepAlive = cmp.Or(o.EventsKeepAlive, 15*time.Second)
	o.HeartbeatEvery = cmp.Or(o.HeartbeatEvery, cluster.HeartbeatEvery)
	o.TriggerTimeout = cmp.Or(o.TriggerTimeout, 30*time.Second)
	return o
}
