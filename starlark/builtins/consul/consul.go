// Package consul is the consul integration: scripts read and write
// Consul's key/value store and find a service's healthy instances through
// the executing node's client (hashicorp/consul/api).
//
//	consul.get(key) -> the value as a string, or None
//	consul.put(key, value) -> None
//	consul.service(name, tag=None) -> ["host:port", ...], the instances passing their checks
//
//	integrations:
//	  consul:
//	    addr: 127.0.0.1:8500
//	    token: ${CONSUL_TOKEN}
//
// Its init registers the integration into builtins.Default.
package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"

	capi "github.com/hashicorp/consul/api"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
)

// Config is the consul integration's configuration.
type Config struct {
	// Addr is the agent's HTTP API, host:port ("": not configured).
	Addr string `yaml:"addr"`
	// Scheme is http (default) or https.
	Scheme string `yaml:"scheme"`
	// Token is an ACL token.
	Token string `yaml:"token" secret:"true"`
	// Datacenter, empty for the agent's own.
	Datacenter string `yaml:"datacenter"`
}

// Client is a node's consul instance.
type Client struct {
	cfg Config
	api *capi.Client
}

// Integration is the consul integration.
var Integration = builtins.Define("consul", "Consul: key/value store, healthy service instances", Config{}, func(_ context.Context, c Config) (*Client, error) {
	cl := &Client{cfg: c}
	if c.Addr == "" {
		return cl, nil
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("addr %q: want host:port, e.g. 127.0.0.1:8500", c.Addr)
	}
	if c.Scheme != "" && c.Scheme != "http" && c.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q: want http or https", c.Scheme)
	}
	api, err := capi.NewClient(&capi.Config{Address: c.Addr, Scheme: c.Scheme, Token: c.Token, Datacenter: c.Datacenter})
	if err != nil {
		return nil, err
	}
	cl.api = api
	return cl, nil
})

func init() {
	Integration.Steps = []*builtins.Step{
		{Name: "consul.get", Doc: "a key's value in Consul's KV store, or None", Args: keyArgs(false), Exec: run(get), Target: target},
		{Name: "consul.put", Doc: "set a key in Consul's KV store", Args: keyArgs(true), Exec: run(put), Target: target},
		{Name: "consul.service", Doc: "a service's instances passing their checks, as host:port", Args: serviceArgs, Exec: run(service), Target: target},
	}
	Register(builtins.Default)
}

// Register adds the consul integration and its builtins to r.
func Register(r *builtins.Registry) { r.MustRegisterIntegration(Integration) }

// Check asks the agent for the cluster's leader, within ctx.
func (c *Client) Check(ctx context.Context) error {
	if c.api == nil {
		return fmt.Errorf("no addr (add integrations: consul: addr: host:port to the node's --config file): %w", builtins.ErrNotConfigured)
	}
	if _, err := c.api.Status().LeaderWithQueryOptions((&capi.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("agent at %s: %v; is it up, and the token right?", c.cfg.Addr, err)
	}
	return nil
}

// args are the builtins' journaled arguments.
type args struct {
	Key     string `json:"key,omitempty"`
	Value   string `json:"value,omitempty"`
	Service string `json:"service,omitempty"`
	Tag     string `json:"tag,omitempty"`
}

func keyArgs(withValue bool) func(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
	return func(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
		var out args
		var err error
		if withValue {
			err = builtins.UnpackArgs(b.Name(), a, kw, "key", &out.Key, "value", &out.Value)
		} else {
			err = builtins.UnpackArgs(b.Name(), a, kw, "key", &out.Key)
		}
		if err != nil {
			return nil, err
		}
		if out.Key == "" || out.Key[0] == '/' {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "key", Err: fmt.Errorf("%q: want a non-empty key not starting with /", out.Key)}
		}
		return out, nil
	}
}

func serviceArgs(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
	var out args
	if err := builtins.UnpackArgs(b.Name(), a, kw, "name", &out.Service, "tag?", &out.Tag); err != nil {
		return nil, err
	}
	if out.Service == "" {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "name", Err: errors.New("empty service name")}
	}
	return out, nil
}

// target is the breaker target of the node's agent.
func target(env builtins.Env, _ json.RawMessage) string {
	if c, err := builtins.Use[*Client](env, "consul"); err == nil && c.cfg.Addr != "" {
		return "consul " + c.cfg.Addr
	}
	return ""
}

func get(ctx context.Context, c *capi.Client, a args) (any, error) {
	kv, _, err := c.KV().Get(a.Key, (&capi.QueryOptions{}).WithContext(ctx))
	if err != nil || kv == nil {
		return nil, err
	}
	return string(kv.Value), nil
}

func put(ctx context.Context, c *capi.Client, a args) (any, error) {
	_, err := c.KV().Put(&capi.KVPair{Key: a.Key, Value: []byte(a.Value)}, (&capi.WriteOptions{}).WithContext(ctx))
	return nil, err
}

func service(ctx context.Context, c *capi.Client, a args) (any, error) {
	entries, _, err := c.Health().Service(a.Service, a.Tag, true, (&capi.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(entries))
	for _, e := range entries {
		host := e.Service.Address
		if host == "" {
			host = e.Node.Address // a service registered without an address has its node's
		}
		out = append(out, net.JoinHostPort(host, strconv.Itoa(e.Service.Port)))
	}
	return out, nil
}

// run makes an Exec from a call of the node's client.
func run(call func(ctx context.Context, c *capi.Client, a args) (any, error)) func(context.Context, builtins.Env, json.RawMessage) (any, error) {
	return builtins.Call("consul", func(ctx context.Context, env builtins.Env, c *Client, a args) (any, error) {
		if c.api == nil {
			return nil, builtins.Errorf(builtins.CodeBadArgs, "consul: node %s has no agent configured (integrations: consul: addr in its --config file)", env.Node())
		}
		v, err := call(ctx, c.api, a)
		if err == nil {
			return v, nil
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, err
		}
		var se capi.StatusError
		if errors.As(err, &se) && se.Code < 500 {
			return nil, &builtins.StepError{Code: "consul", Message: fmt.Sprintf("consul at %s: %v", c.cfg.Addr, builtins.Redact(err.Error()))}
		}
		return nil, &builtins.StepError{Code: builtins.CodeTransport, Retryable: true, Message: fmt.Sprintf("consul at %s: %v", c.cfg.Addr, builtins.Redact(err.Error()))}
	})
}
