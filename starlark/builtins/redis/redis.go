// Package redis is the redis integration: scripts read and write a Redis
// server through the executing node's client (go-redis), opened once per
// node from its configuration.
//
//	redis.get(key) -> string or None
//	redis.set(key, value, ttl=None) -> None
//	redis.incr(key, by=1) -> int
//	redis.delete(key, ...) -> number of keys removed
//	redis.hget(key, field) -> string or None
//	redis.hset(key, field, value) -> 1 if the field is new, else 0
//	redis.hgetall(key) -> dict of strings
//	redis.publish(channel, message) -> number of subscribers that got it
//
// Values are strings (numbers are stored as their text; json.encode other
// values). redis.incr and redis.publish are not retried: a retry after a
// lost reply would count or deliver twice. Each command is an OpenTelemetry
// client span, a child of the step's, naming the command but neither its
// keys nor its values ("SET ? ?").
//
//	integrations:
//	  redis:
//	    addr: 127.0.0.1:6379
//	    password: ${REDIS_PASSWORD}
//
// Its init registers the integration into builtins.Default.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// Config is the redis integration's configuration.
type Config struct {
	// Addr is the server's host:port ("": not configured).
	Addr string `yaml:"addr"`
	// Username and Password authenticate (ACL user, or the password alone).
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// DB is the database number (default 0).
	DB int `yaml:"db"`
	// PoolSize bounds the node's connections (default 10).
	PoolSize int `yaml:"pool_size"`
}

// Client is a node's redis instance.
type Client struct {
	cfg Config
	rdb *goredis.Client
}

// Integration is the redis integration.
var Integration = builtins.Define("redis", "a Redis server: strings, counters, hashes, publish", Config{}, func(_ context.Context, c Config) (*Client, error) {
	cl := &Client{cfg: c}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return nil, fmt.Errorf("addr %q: want host:port, e.g. 127.0.0.1:6379", c.Addr)
		}
		cl.rdb = goredis.NewClient(&goredis.Options{Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB, PoolSize: c.PoolSize,
			MaxRetries: -1}) // the engine retries steps, with their policy
	}
	return cl, nil
})

func init() {
	Integration.Steps = steps()
	Register(builtins.Default)
}

// Register adds the redis integration and its builtins to r.
func Register(r *builtins.Registry) { r.MustRegisterIntegration(Integration) }

// Check pings the server.
func (c *Client) Check(ctx context.Context) error {
	if c.rdb == nil {
		return fmt.Errorf("no addr (add integrations: redis: addr: host:port to the node's --config file): %w", builtins.ErrNotConfigured)
	}
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping %s: %v; is the server up, and the password right?", c.cfg.Addr, err)
	}
	return nil
}

// Close closes the client's connections.
func (c *Client) Close() error {
	if c.rdb == nil {
		return nil
	}
	return c.rdb.Close()
}

// noRetry is the policy of steps a retry could apply twice.
var noRetry = builtins.RetryPolicy{MaxAttempts: 1}

func steps() []*builtins.Step {
	return []*builtins.Step{
		{Name: "redis.get", Target: target, Doc: "the string under a key, or None", Args: params("key"),
			Exec: run("GET", func(ctx context.Context, r *goredis.Client, a args) (any, error) {
				return nilIsNone(r.Get(ctx, a.Key).Result())
			})},
		{Name: "redis.set", Target: target, Doc: "set a key, with an optional time to live", Args: setArgs,
			Exec: run("SET", func(ctx context.Context, r *goredis.Client, a args) (any, error) {
				return nil, r.Set(ctx, a.Key, a.Value, time.Duration(a.TTL)).Err()
			})},
		{Name: "redis.incr", Target: target, Doc: "add to a counter; its new value", Args: incrArgs, Retry: noRetry,
			Exec: run("INCRBY", func(ctx context.Context, r *goredis.Client, a args) (any, error) {
				return r.IncrBy(ctx, a.Key, a.By).Result()
			})},
		{Name: "redis.delete", Target: target, Doc: "remove keys; how many there were", Args: deleteArgs,
			Exec: run("DEL", func(ctx context.Context, r *goredis.Client, a args) (any, error) {
				return r.Del(ctx, a.Keys...).Result()
			})},
		{Name: "redis.hget", Target: target, Doc: "a field of a hash, or None", Args: params("key", "field"),
			Exec: run("HGET", func(ctx context.Context, r *goredis.Client, a args) (any, error) {
				return nilIsNone(r.HGet(ctx, a.Key, a.Field).Result())
			})},
		{Name: "redis.hset", Target: target, Doc: "set a field of a hash; 1 if it is new", Args: params("key", "field", "value"),
			Exec: run("HSET", func(ctx context.Context, r *goredis.Client, a args) (any, error) {
				return r.HSet(ctx, a.Key, a.Field, a.Value).Result()
			})},
		{Name: "redis.hgetall", Target: target, Doc: "every field of a hash, as a dict", Args: params("key"),
			Exec: run("HGETALL", func(ctx context.Context, r *goredis.Client, a args) (any, error) {
				return r.HGetAll(ctx, a.Key).Result()
			})},
		{Name: "redis.publish", Target: target, Doc: "publish a message on a channel; how many subscribers got it", Args: params("channel", "message"), Retry: noRetry,
			Exec: run("PUBLISH", func(ctx context.Context, r *goredis.Client, a args) (any, error) {
				return r.Publish(ctx, a.Channel, a.Message).Result()
			})},
	}
}

// target is the breaker target of the node's server.
func target(env builtins.Env, _ json.RawMessage) string {
	if c, err := builtins.Use[*Client](env, "redis"); err == nil && c.cfg.Addr != "" {
		return "redis " + c.cfg.Addr
	}
	return ""
}

// args are every builtin's journaled arguments.
type args struct {
	Key     string   `json:"key,omitempty"`
	Keys    []string `json:"keys,omitempty"`
	Field   string   `json:"field,omitempty"`
	Value   string   `json:"value,omitempty"`
	TTL     int64    `json:"ttl_ns,omitempty"`
	By      int64    `json:"by,omitempty"`
	Channel string   `json:"channel,omitempty"`
	Message string   `json:"message,omitempty"`
}

// params parses positional or named string parameters into args.
func params(names ...string) func(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
	return func(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
		vals := make([]starlark.Value, len(names))
		pairs := make([]any, 0, 2*len(names))
		for i, n := range names {
			pairs = append(pairs, n, &vals[i])
		}
		if err := builtins.UnpackArgs(b.Name(), a, kw, pairs...); err != nil {
			return nil, err
		}
		var out args
		for i, n := range names {
			s, err := text(b.Name(), n, vals[i])
			if err != nil {
				return nil, err
			}
			switch n {
			case "key":
				out.Key = s
			case "field":
				out.Field = s
			case "value":
				out.Value = s
			case "channel":
				out.Channel = s
			case "message":
				out.Message = s
			}
		}
		if out.Key == "" && (len(names) > 0 && names[0] == "key") {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "key", Err: errors.New("empty key")}
		}
		return out, nil
	}
}

// text is a string parameter's value: a string, or a number's text.
func text(fn, param string, v starlark.Value) (string, error) {
	switch x := v.(type) {
	case starlark.String:
		return string(x), nil
	case starlark.Int, starlark.Float:
		return x.String(), nil
	}
	return "", &builtins.ArgError{Func: fn, Param: param, Err: fmt.Errorf("got %s, want a string or a number (json.encode other values)", v.Type())}
}

func setArgs(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
	var key, value starlark.Value
	var ttl builtins.Duration
	if err := builtins.UnpackArgs(b.Name(), a, kw, "key", &key, "value", &value, "ttl?", &ttl); err != nil {
		return nil, err
	}
	out, err := params("key", "value")(b, starlark.Tuple{key, value}, nil)
	if err != nil {
		return nil, err
	}
	o := out.(args)
	if ttl < 0 {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "ttl", Err: errors.New("a negative time to live")}
	}
	o.TTL = int64(ttl)
	return o, nil
}

func incrArgs(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
	var key string
	by := 1
	if err := builtins.UnpackArgs(b.Name(), a, kw, "key", &key, "by?", &by); err != nil {
		return nil, err
	}
	if key == "" {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "key", Err: errors.New("empty key")}
	}
	return args{Key: key, By: int64(by)}, nil
}

func deleteArgs(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
	if len(kw) > 0 || len(a) == 0 {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "key", Err: errors.New("give one key or more, by position")}
	}
	out := args{}
	for i, v := range a {
		s, ok := v.(starlark.String)
		if !ok || s == "" {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "key " + strconv.Itoa(i+1), Err: fmt.Errorf("got %s, want a non-empty string", v.Type())}
		}
		out.Keys = append(out.Keys, string(s))
	}
	return out, nil
}

// run makes an Exec from a call of the node's client, which sends command
// cmd, in a client span.
func run(cmd string, call func(ctx context.Context, r *goredis.Client, a args) (any, error)) func(context.Context, builtins.Env, json.RawMessage) (any, error) {
	return builtins.Call("redis", func(ctx context.Context, env builtins.Env, c *Client, a args) (any, error) {
		if c.rdb == nil {
			return nil, builtins.Errorf(builtins.CodeBadArgs, "redis: node %s has no redis server configured (integrations: redis: addr in its --config file)", env.Node())
		}
		ctx, span := telemetry.StartClient(ctx, scope, func() (string, []attribute.KeyValue) { return cmd, c.attrs(cmd, a) })
		defer span.End()
		v, err := call(ctx, c.rdb, a)
		if err != nil {
			err = c.failure(err)
			if span.IsRecording() {
				builtins.FailSpan(span, err)
			}
			return nil, err
		}
		return v, nil
	})
}

// nilIsNone turns a missing key into None.
func nilIsNone(v string, err error) (any, error) {
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	return v, err
}

// passing reports whether a server error says the server is not ready yet
// (loading its data, a replica, a cluster reconfiguring): retried.
func passing(msg string) bool {
	for _, p := range []string{"LOADING", "READONLY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "BUSY"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// failure turns a client error into the step's error: the server's own
// (WRONGTYPE, …) is "redis", a connection that failed is "transport",
// retried.
func (c *Client) failure(err error) error {
	var re goredis.Error
	var ne net.Error
	switch {
	case errors.As(err, &ne):
		return &builtins.StepError{Code: builtins.CodeTransport, Retryable: true, Message: fmt.Sprintf("redis at %s: %v", c.cfg.Addr, err)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &re) && !passing(err.Error()):
		return &builtins.StepError{Code: "redis", Message: fmt.Sprintf("redis at %s: %v", c.cfg.Addr, err)}
	}
	return &builtins.StepError{Code: builtins.CodeTransport, Retryable: true, Message: fmt.Sprintf("redis at %s: %v", c.cfg.Addr, err)}
}
