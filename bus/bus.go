package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

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
	// Replicas for streams and buckets (default 1).
	Replicas int
	// JournalMaxAge is how long journals are kept (default 30 days).
	JournalMaxAge time.Duration
	// MaxPayload is the embedded server's largest message (default 8 MiB).
	MaxPayload int32
}

// Bus is a connection to NATS, embedded or external, with Drover's streams.
type Bus struct {
	opts    Options
	ns      *server.Server // nil when external
	nc      *nats.Conn
	js      jetstream.JetStream
	journal jetstream.Stream
	tmpDir  string
	lock    *os.File

	mu      sync.Mutex
	buckets map[string]*KV
	pinned  jetstream.ObjectStore
}

// Open starts or connects to NATS and creates Drover's streams and buckets if
// they do not exist yet.
func Open(ctx context.Context, opts Options) (*Bus, error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
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
	} else if err := b.startEmbedded(); err != nil {
		b.Close()
		return nil, err
	}
	b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	if err := b.ensure(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
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
	so := &server.Options{
		ServerName: serverName(b.opts.Name),
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "jetstream"),
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: b.opts.MaxPayload,
		DontListen: b.opts.Listen == "",
	}
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
	return nil
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
		return nil, fmt.Errorf("%w: %s is held by process %s; stop it, or talk to it with --server, or use another --data-dir",
			ErrDataDirInUse, dir, strings.TrimSpace(string(pid)))
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// ensure creates or updates every stream and bucket.
func (b *Bus) ensure(ctx context.Context) error {
	var err error
	b.journal, err = b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:                 JournalStream,
		Description:          "Drover run journals: one write-once message per subject",
		Subjects:             []string{JournalPrefix + ">"},
		Storage:              jetstream.FileStorage,
		Retention:            jetstream.LimitsPolicy,
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxAge:               b.opts.JournalMaxAge,
		Duplicates:           min(2*time.Minute, b.opts.JournalMaxAge),
		Replicas:             b.opts.Replicas,
		AllowDirect:          true,
	})
	if err != nil {
		return fmt.Errorf("bus: journal stream: %w", err)
	}
	_, err = b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StepsStream,
		Description: "Drover step envelopes, one subject per executing node",
		Subjects:    []string{StepsPrefix + ">"},
		Storage:     jetstream.MemoryStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      stepsMaxAge,
		Duplicates:  time.Minute,
		Replicas:    b.opts.Replicas,
	})
	if err != nil {
		return fmt.Errorf("bus: steps stream: %w", err)
	}
	for _, cfg := range []jetstream.KeyValueConfig{
		{Bucket: RunsBucket, Description: "Drover runs index", History: 1, Storage: jetstream.FileStorage, TTL: b.opts.JournalMaxAge},
		{Bucket: ScriptsBucket, Description: "Drover script sources by content hash", History: 1, Storage: jetstream.FileStorage},
		{Bucket: DataBucket, Description: "kv.* builtins", History: 1, Storage: jetstream.FileStorage},
	} {
		cfg.Replicas = b.opts.Replicas
		kv, err := b.js.CreateOrUpdateKeyValue(ctx, cfg)
		if err != nil {
			return fmt.Errorf("bus: bucket %s: %w", cfg.Bucket, err)
		}
		b.buckets[cfg.Bucket] = &KV{kv: kv}
	}
	b.pinned, err = b.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: PinnedBucket, Description: "Drover runs kept past retention", Storage: jetstream.FileStorage, Replicas: b.opts.Replicas,
	})
	if err != nil {
		return fmt.Errorf("bus: object store %s: %w", PinnedBucket, err)
	}
	return nil
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
	if b.nc != nil {
		b.nc.FlushTimeout(2 * time.Second)
		b.nc.Close()
	}
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
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
