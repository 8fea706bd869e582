package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configures a Bus. The zero value starts an embedded, in-process-only
// server with its store in a temporary directory that Close removes.
type Options struct {
	// Name is the node name, used as the embedded server's name.
	Name string
	// DataDir holds the embedded server's JetStream store (DataDir/jetstream).
	// Empty means a temporary directory, removed on Close.
	DataDir string
	// URL connects to an external NATS (with JetStream) instead of embedding one.
	URL string
	// Listen is the host:port where the embedded server accepts NATS clients.
	// Empty means no listener: only the in-process connection. Port 0 or -1
	// picks a free port.
	Listen string
	// ClusterListen is where the embedded server accepts routes from other
	// nodes' servers (host:port; port 0 picks a free one). Empty means the
	// server is not clustered, unless Peers is set (then 127.0.0.1:0).
	ClusterListen string
	// Peers are route URLs of other nodes' embedded servers
	// (nats://host:port of their ClusterListen): the servers form one NATS and
	// JetStream cluster. A star around one seed is enough; routes gossip.
	Peers []string
	// ClusterName names the cluster (default "drover").
	ClusterName string
	// Replicas for streams and buckets. Zero means 3 when the cluster has 3 or
	// more servers (this node and its peers, or an external cluster's size),
	// else 1.
	Replicas int
	// JournalMaxAge is how long journals are kept (default 30 days).
	JournalMaxAge time.Duration
	// Partitions is how many partitions of the journal and the runs index
	// this node makes and starts new runs in (default 1; at most
	// MaxPartitions). Partitions other nodes made are read all the same.
	Partitions int
	// MaxPayload is the embedded server's largest message (default 8 MiB).
	MaxPayload int32
	// Sync is when the embedded server's writes reach the disk (the zero
	// value: every 2 minutes; SyncAlways: before each acknowledgement).
	Sync SyncPolicy
	// RunLog makes the journal streams hold many messages per subject, so
	// that a run's entries can share one subject, its log (AppendFenced;
	// docs/architecture.md, "One subject per run"); entries on a
	// subject of their own stay write-once by an expected-sequence header
	// instead of the stream's one-message-per-subject limit. A journal that
	// has run logs keeps them whatever RunLog says: the change is made once,
	// and not undone (see runLogGuard).
	RunLog bool
	// noGroupSync leaves the always policy to the server (benchmarks).
	noGroupSync bool
}

// Bus is a connection to NATS, embedded or external, with Drover's streams.
type Bus struct {
	opts   Options
	runLog atomic.Bool    // the journal holds run logs (Options.RunLog, EnableRunLog)
	ns     *server.Server // nil when external
	nc     *nats.Conn
	js     jetstream.JetStream
	parts  partitions // the journal's and the runs index's
	tmpDir string
	lock   *os.File

	// group syncs the embedded server's store under the always policy
	// (groupsync.go); remoteSync asks the server reached by URL to.
	group      *groupSync
	remoteSync bool

	// multi routes the answers of requests answered by several messages.
	multi replies
	// stopRebalance stops the partitions' leaders rebalancing, if it runs.
	stopRebalance context.CancelFunc

	// hooks stall or lose parts of reads in tests (hooks.go); nil otherwise.
	hooks *hooks

	mu      sync.Mutex
	buckets map[string]*KV
	pinned  jetstream.ObjectStore
	values  jetstream.ObjectStore
}

// Open starts or connects to NATS and creates Drover's streams and buckets if
// they do not exist yet.
func Open(ctx context.Context, opts Options) (*Bus, error) {
	if opts.Partitions > MaxPartitions {
		return nil, fmt.Errorf("bus: %d partitions: at most %d", opts.Partitions, MaxPartitions)
	}
	opts.Partitions = max(opts.Partitions, 1)
	if opts.JournalMaxAge <= 0 {
		opts.JournalMaxAge = DefaultJournalMaxAge
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 8 << 20
	}
	b := &Bus{opts: opts, buckets: map[string]*KV{}}
	var err error
	if opts.URL != "" {
		b.nc, err = nats.Connect(opts.URL, nats.Name("drover "+opts.Name), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("bus: connect to NATS at %s: %w (is nats-server running with -js?)", opts.URL, err)
		}
		b.probeRemoteSync()
	} else if err := b.startEmbedded(); err != nil {
		b.Close()
		return nil, err
	}
	b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(asyncAckTimeout))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.runLog.Store(opts.RunLog && b.guarded())
	if b.opts.Replicas <= 0 {
		b.opts.Replicas = 1
		if b.clusterSize() >= 3 {
			b.opts.Replicas = 3
		}
	}
	// A clustered JetStream answers only once its meta group has a leader:
	// retry until then, within ctx.
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = b.ensure(actx)
		cancel()
		if err == nil || !b.clustered() || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	if b.ns != nil && b.clustered() {
		var rctx context.Context
		rctx, b.stopRebalance = context.WithCancel(context.Background())
		go b.rebalance(rctx)
	}
	return b, nil
}

// clustered reports whether the bus is part of a multi-server NATS.
func (b *Bus) clustered() bool {
	return len(b.opts.Peers) > 0 || b.opts.ClusterListen != "" || (b.ns == nil && len(b.nc.DiscoveredServers()) > 0)
}

// clusterSize is the number of servers known at start: this node and its
// peers, or the servers an external NATS advertises.
func (b *Bus) clusterSize() int {
	if b.ns != nil {
		return 1 + len(b.opts.Peers)
	}
	return len(b.nc.Servers())
}

// RunLog reports whether the journal holds run logs (Options.RunLog).
func (b *Bus) RunLog() bool { return b.runLog.Load() }

// Replicas is the replication factor of Drover's streams and buckets.
func (b *Bus) Replicas() int { return b.opts.Replicas }

// ClusterURL is the route URL other nodes pass in Peers to join this node's
// embedded server, or "" when it is not clustered.
func (b *Bus) ClusterURL() string {
	if b.ns == nil {
		return ""
	}
	if a := b.ns.ClusterAddr(); a != nil {
		return "nats://" + a.String()
	}
	return ""
}

func (b *Bus) startEmbedded() error {
	dir := b.opts.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "drover-bus-")
		if err != nil {
			return fmt.Errorf("bus: temp dir: %w", err)
		}
		b.tmpDir, dir = tmp, tmp
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bus: data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return err
	}
	b.lock = lock
	clustered := b.opts.ClusterListen != "" || len(b.opts.Peers) > 0
	if b.opts.Sync.Always && !clustered && !b.opts.noGroupSync {
		if b.group, err = newGroupSync(dir); err != nil {
			return err
		}
	}
	so := &server.Options{
		ServerName:   serverName(b.opts.Name),
		JetStream:    true,
		StoreDir:     filepath.Join(dir, "jetstream"),
		NoSigs:       true,
		NoLog:        true,
		MaxPayload:   b.opts.MaxPayload,
		SyncAlways:   b.opts.Sync.Always && b.group == nil,
		SyncInterval: b.opts.Sync.interval(),
		// The tag pins this node's step inbox to its own server (ensureSteps).
		Tags: jwt.TagList{nodeTag(serverName(b.opts.Name))},
	}
	if len(b.opts.Peers) > 0 && b.opts.ClusterListen == "" {
		b.opts.ClusterListen = "127.0.0.1:0"
	}
	if b.opts.ClusterListen != "" && b.opts.Listen == "" {
		// nats-server starts routing only after its client accept loop, so
		// a clustered server needs a client listener.
		b.opts.Listen = "127.0.0.1:0"
	}
	if b.opts.ClusterListen != "" {
		host, port, err := splitAddr("cluster", b.opts.ClusterListen)
		if err != nil {
			return err
		}
		so.Cluster = server.ClusterOpts{Name: cmp.Or(b.opts.ClusterName, "drover"), Host: host, Port: port}
		so.Routes = server.RoutesFromStr(strings.Join(b.opts.Peers, ","))
	}
	so.DontListen = b.opts.Listen == ""
	if b.opts.Listen != "" {
		host, port, err := net.SplitHostPort(b.opts.Listen)
		if err != nil {
			return fmt.Errorf("bus: listen address %q: %w (want host:port, e.g. 127.0.0.1:4322)", b.opts.Listen, err)
		}
		so.Host = host
		if so.Port, err = strconv.Atoi(port); err != nil {
			return fmt.Errorf("bus: listen port %q is not a number", port)
		}
		if so.Port == 0 {
			so.Port = server.RANDOM_PORT
		}
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("bus: embedded NATS: %w", err)
	}
	b.ns = ns
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("bus: embedded NATS did not start within 10s (is %s free?)", b.opts.Listen)
	}
	b.nc, err = nats.Connect("", nats.InProcessServer(ns), nats.Name("drover "+b.opts.Name))
	if err != nil {
		return fmt.Errorf("bus: in-process connection: %w", err)
	}
	if b.group != nil {
		return b.group.serve(b.nc)
	}
	return nil
}

// splitAddr parses host:port for an option named what; port 0 means any.
func splitAddr(what, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("bus: %s address %q: %w (want host:port, e.g. 127.0.0.1:6322)", what, addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("bus: %s port %q is not a number", what, port)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	return host, p, nil
}

func serverName(name string) string {
	if name == "" {
		return "drover"
	}
	return name
}

// lockDir takes an exclusive lock on dir/LOCK so that two processes never open
// the same store.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bus: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("%w: %s is held by process %s; stop that process or use another data dir (ctl can talk to a running engine with --server)",
			ErrDataDirInUse, dir, strings.TrimSpace(string(pid)))
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// journalDuplicates is the journal stream's duplicate window. Write-once
// subjects already refuse a second write of an entry (and bus tells a
// retried one from another by reading the subject), so the window only
// saves that read for a retry soon after the first try: kept short, since
// the server holds every message id of the window in memory (about 100
// bytes each: 10 s at 15,000 appends/s is 15 MB, nats-server's default of
// 2 minutes would be 180 MB) and rebuilds them on start by reading the
// window's messages back.
const journalDuplicates = 10 * time.Second

// ensure creates or updates every stream and bucket.
func (b *Bus) ensure(ctx context.Context) error {
	if s, err := b.js.Stream(ctx, JournalStreamOf(0)); err == nil && s.CachedInfo().Config.MaxMsgsPerSubject != 1 {
		b.runLog.Store(true) // it has run logs already: keep them
	}
	created, err := b.createOrUpdate(ctx, b.journalConfig(0))
	if err != nil {
		return fmt.Errorf("bus: journal stream: %w", err)
	}
	if created {
		b.spreadLeader(ctx, 0)
	}
	if err := b.ensureSteps(ctx); err != nil {
		return err
	}
	if err := b.ensureLogs(ctx); err != nil {
		return err
	}
	if err := b.ensureCluster(ctx); err != nil {
		return err
	}
	for _, cfg := range []jetstream.KeyValueConfig{
		b.runsConfig(0),
		{Bucket: ScriptsBucket, Description: "Drover script sources by content hash", History: 1, Storage: jetstream.FileStorage},
		{Bucket: DataBucket, Description: "kv.* builtins", History: 1, Storage: jetstream.FileStorage},
		{Bucket: NodesBucket, Description: "Drover node heartbeats", History: 1, Storage: jetstream.MemoryStorage, TTL: NodesTTL},
		{Bucket: LimitsBucket, Description: "Drover shared resource limits", History: 1, Storage: jetstream.MemoryStorage},
		{Bucket: TriggersBucket, Description: "Drover messages that started runs", History: 1, Storage: jetstream.FileStorage, TTL: TriggersTTL},
		{Bucket: TapsBucket, Description: "Drover live log tails", History: 1, Storage: jetstream.MemoryStorage, TTL: TapTTL},
	} {
		cfg.Replicas = b.opts.Replicas
		kv, err := b.js.CreateOrUpdateKeyValue(ctx, cfg)
		if err != nil {
			return fmt.Errorf("bus: bucket %s: %w", cfg.Bucket, err)
		}
		b.buckets[cfg.Bucket] = &KV{kv: kv, b: b, durable: cfg.Storage == jetstream.FileStorage}
	}
	b.pinned, err = b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: PinnedBucket, Description: "Drover runs kept past retention", Storage: jetstream.FileStorage, Replicas: b.opts.Replicas,
	})
	if err != nil {
		return fmt.Errorf("bus: object store %s: %w", PinnedBucket, err)
	}
	b.values, err = b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: ValuesBucket, Description: "Drover large journal values by content hash", Storage: jetstream.FileStorage,
		Replicas: b.opts.Replicas, TTL: b.opts.JournalMaxAge + valueRefresh,
	})
	if err != nil {
		return fmt.Errorf("bus: object store %s: %w", ValuesBucket, err)
	}
	return b.ensurePartitions(ctx, b.opts.Partitions)
}

// ClientURL is where NATS clients reach the embedded server, or the external
// URL; empty when the embedded server has no listener.
func (b *Bus) ClientURL() string {
	if b.ns == nil {
		return b.opts.URL
	}
	if b.opts.Listen == "" {
		return ""
	}
	return b.ns.ClientURL()
}

// Embedded reports whether the bus runs its own server.
func (b *Bus) Embedded() bool { return b.ns != nil }

// Close drains the connection and shuts down an embedded server. Everything
// acknowledged before Close is on disk.
func (b *Bus) Close() error {
	if b.stopRebalance != nil {
		b.stopRebalance()
	}
	if b.nc != nil {
		b.nc.FlushTimeout(2 * time.Second)
		b.nc.Close()
	}
	if b.ns != nil {
		if !b.ns.JetStreamIsClustered() {
			// Stop JetStream first (streams stop and write their state as
			// in Shutdown): Shutdown would otherwise warn the pull
			// consumers' waiting requests, whose clients are gone, and
			// sleep 50 ms for the warnings to leave, a third of an
			// embedded ctl's run.
			b.ns.ShutdownJetStream()
		}
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
	if b.group != nil {
		b.group.close()
	}
	if b.lock != nil {
		b.lock.Close()
	}
	if b.tmpDir != "" {
		os.RemoveAll(b.tmpDir)
	}
	return nil
}

func isClosed(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionDraining)
}
