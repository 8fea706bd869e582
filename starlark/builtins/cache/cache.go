// Package cache is the cache integration: scripts cache JSON values at
// will in memcached, through the executing node's client (gomemcache),
// without opening a connection themselves.
//
//	cache.get(key) -> the value, or None when missing or expired
//	cache.set(key, value, ttl=None) -> None   (ttl: up to 30 days; None: until evicted)
//	cache.delete(key) -> True if the key was there
//
// Values are stored as canonical JSON, so any JSON value round-trips. A
// key is 1 to 250 bytes without spaces or control characters (memcached's
// rule). A server that cannot be reached fails the step with "transport",
// retried. Each command is an OpenTelemetry client span, a child of the
// step's, naming the command but not its key ("get ?").
//
//	integrations:
//	  cache:
//	    servers: [127.0.0.1:11211]
//
// Its init registers the integration into builtins.Default.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"go.opentelemetry.io/otel/attribute"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// Config is the cache integration's configuration.
type Config struct {
	// Servers are memcached's host:port addresses; keys are spread over
	// them (none: not configured).
	Servers []string `yaml:"servers"`
	// Timeout bounds one request (default 500ms).
	Timeout time.Duration `yaml:"timeout"`
	// MaxIdle is how many connections per server the node keeps open
	// between calls (default 8).
	MaxIdle int `yaml:"max_idle"`
}

// Client is a node's cache instance.
type Client struct {
	cfg     Config
	mc      *memcache.Client
	servers *memcache.ServerList // mc's: the server of a key, for spans
}

// MaxTTL is the longest time to live: memcached reads a longer one as a
// Unix time.
const MaxTTL = 30 * 24 * time.Hour

// Integration is the cache integration.
var Integration = builtins.Define("cache", "memcached: JSON values cached with a time to live", Config{}, func(_ context.Context, c Config) (*Client, error) {
	cl := &Client{cfg: c}
	if len(c.Servers) == 0 {
		return cl, nil
	}
	for _, s := range c.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("server %q: want host:port, e.g. 127.0.0.1:11211", s)
		}
	}
	cl.servers = new(memcache.ServerList)
	cl.servers.SetServers(c.Servers...) // as memcache.New does: with an address that does not resolve, calls fail (ErrNoServers)
	cl.mc = memcache.NewFromSelector(cl.servers)
	cl.mc.Timeout = c.Timeout
	if cl.mc.Timeout <= 0 {
		cl.mc.Timeout = 500 * time.Millisecond
	}
	cl.mc.MaxIdleConns = c.MaxIdle
	if cl.mc.MaxIdleConns <= 0 {
		cl.mc.MaxIdleConns = 8
	}
	return cl, nil
})

func init() {
	Integration.Steps = steps()
	Register(builtins.Default)
}

// Register adds the cache integration and its builtins to r.
func Register(r *builtins.Registry) { r.MustRegisterIntegration(Integration) }

// Check pings every server.
func (c *Client) Check(context.Context) error {
	if c.mc == nil {
		return fmt.Errorf("no servers (add integrations: cache: servers: [host:port] to the node's --config file): %w", builtins.ErrNotConfigured)
	}
	if err := c.mc.Ping(); err != nil {
		return fmt.Errorf("ping %s: %v; is memcached up?", strings.Join(c.cfg.Servers, ", "), err)
	}
	return nil
}

// Close closes the client's idle connections.
func (c *Client) Close() error {
	if c.mc == nil {
		return nil
	}
	return c.mc.Close()
}

// args are the builtins' journaled arguments.
type args struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value,omitempty"`
	TTL   int64           `json:"ttl_s,omitempty"`
}

func steps() []*builtins.Step {
	return []*builtins.Step{
		{Name: "cache.get", Doc: "a cached JSON value, or None", Args: keyArgs, Exec: run("get", get), Target: target},
		{Name: "cache.set", Doc: "cache a JSON value, with an optional time to live", Args: setArgs, Exec: run("set", set), Target: target},
		{Name: "cache.delete", Doc: "remove a cached value; True if it was there", Args: keyArgs, Exec: run("delete", del), Target: target},
	}
}

// target is the breaker target of the node's servers.
func target(env builtins.Env, _ json.RawMessage) string {
	if c, err := builtins.Use[*Client](env, "cache"); err == nil && len(c.cfg.Servers) > 0 {
		return "memcache " + strings.Join(c.cfg.Servers, ",")
	}
	return ""
}

func keyArgs(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
	var key string
	if err := builtins.UnpackArgs(b.Name(), a, kw, "key", &key); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "key", Err: err}
	}
	return args{Key: key}, nil
}

func setArgs(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
	var key string
	var value starlark.Value
	var ttl builtins.Duration
	if err := builtins.UnpackArgs(b.Name(), a, kw, "key", &key, "value", &value, "ttl?", &ttl); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "key", Err: err}
	}
	v, err := builtins.ToJSON(value)
	if err != nil {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "value", Err: err}
	}
	raw, err := builtins.Canonical(v)
	if err != nil {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "value", Err: err}
	}
	d := time.Duration(ttl)
	switch {
	case d < 0 || d > MaxTTL:
		return nil, &builtins.ArgError{Func: b.Name(), Param: "ttl", Err: fmt.Errorf("%s: want 1s to %s, or None", d, MaxTTL)}
	case d > 0 && d < time.Second:
		return nil, &builtins.ArgError{Func: b.Name(), Param: "ttl", Err: fmt.Errorf("%s: memcached counts whole seconds; want 1s or more", d)}
	}
	return args{Key: key, Value: raw, TTL: int64(d / time.Second)}, nil
}

// checkKey applies memcached's rule for keys.
func checkKey(key string) error {
	if key == "" || len(key) > 250 {
		return fmt.Errorf("a key is 1 to 250 bytes; this one is %d", len(key))
	}
	for i := range len(key) {
		if c := key[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("the key %q has a space or control character at byte %d", key, i)
		}
	}
	return nil
}

func get(_ context.Context, mc *memcache.Client, a args) (any, error) {
	it, err := mc.Get(a.Key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(it.Value) {
		return nil, builtins.Errorf(builtins.CodeInternal, "cache: the value under %q is not JSON (written by something other than cache.set?)", a.Key)
	}
	return json.RawMessage(it.Value), nil
}

func set(_ context.Context, mc *memcache.Client, a args) (any, error) {
	return nil, mc.Set(&memcache.Item{Key: a.Key, Value: a.Value, Expiration: int32(a.TTL)})
}

func del(_ context.Context, mc *memcache.Client, a args) (any, error) {
	err := mc.Delete(a.Key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return false, nil
	}
	return err == nil, err
}

// run makes an Exec from a call of the node's client, which sends command
// cmd, in a client span.
func run(cmd string, call func(ctx context.Context, mc *memcache.Client, a args) (any, error)) func(context.Context, builtins.Env, json.RawMessage) (any, error) {
	return builtins.Call("cache", func(ctx context.Context, env builtins.Env, c *Client, a args) (any, error) {
		if c.mc == nil {
			return nil, builtins.Errorf(builtins.CodeBadArgs, "cache: node %s has no memcached configured (integrations: cache: servers in its --config file)", env.Node())
		}
		ctx, span := telemetry.StartClient(ctx, scope, func() (string, []attribute.KeyValue) { return cmd, c.attrs(cmd, a.Key) })
		defer span.End()
		v, err := c.call(ctx, call, a)
		if err != nil {
			if span.IsRecording() {
				telemetry.Fail(span, err.Code, builtins.Redact(err.Message))
			}
			return nil, err
		}
		return v, nil
	})
}

// call calls the node's client, turning its error into the step's.
func (c *Client) call(ctx context.Context, call func(ctx context.Context, mc *memcache.Client, a args) (any, error), a args) (any, *builtins.StepError) {
	v, err := call(ctx, c.mc, a)
	var se *builtins.StepError
	var ne net.Error
	var ce *memcache.ConnectTimeoutError
	servers := strings.Join(c.cfg.Servers, ", ")
	switch {
	case err == nil:
		return v, nil
	case errors.As(err, &se):
		return nil, se
	case errors.As(err, &ne), errors.As(err, &ce), errors.Is(err, memcache.ErrNoServers), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, &builtins.StepError{Code: builtins.CodeTransport, Retryable: true, Message: fmt.Sprintf("cache at %s: %v", servers, err)}
	}
	// The server answered: an error of its own (a value too large for
	// it, …), which a retry would meet again.
	return nil, &builtins.StepError{Code: "cache", Message: fmt.Sprintf("cache at %s: %v", servers, err)}
}
