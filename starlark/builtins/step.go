package builtins

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"go.starlark.net/starlark"
)

// A Step describes a builtin whose effect lies outside the script. Every call of
// it becomes one journaled, placed step.
type Step struct {
	// Name is the qualified name the script uses, e.g. "http.get" or "uuid".
	// A dotted name becomes a member of a module named by its first part.
	Name string

	// Args converts the script's arguments into a JSON-encodable value (maps,
	// slices, strings, json.Number, bools, nil). It runs on the coordinator and
	// must be deterministic. Errors should name the builtin and the argument;
	// UnpackArgs and ArgError do. Nil means the step takes no arguments (NoArgs).
	Args func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error)

	// Exec performs the effect. It runs on the node that placement chose, possibly
	// not the coordinator, so it may use only ctx, env and args. A returned
	// *StepError keeps its code and retryability; any other error is an internal,
	// non-retryable failure. The result must be JSON-encodable.
	Exec func(ctx context.Context, env Env, args json.RawMessage) (any, error)

	// Value converts the journaled result into the value the script sees.
	// Nil means FromJSON.
	Value func(result json.RawMessage) (starlark.Value, error)

	// Timeout bounds one attempt when the call gives no deadline of its own
	// (zero means the engine's default). Deadline, if set, reads a per-call
	// deadline from the arguments (e.g. http.get's timeout=).
	Timeout  time.Duration
	Deadline func(args json.RawMessage) time.Duration

	// Retry says how failed attempts with a retryable error are retried.
	// The zero value means DefaultRetry.
	Retry RetryPolicy

	// Local marks side values (clock, random, uuid): they are journaled like any
	// step but always execute on the coordinator, never dispatched.
	Local bool

	// Timer marks a durable timer such as sleep: it returns how long the call
	// waits. The engine completes a long timer itself, without calling Exec
	// and without holding a goroutine or Starlark thread while it waits, and
	// the wait survives restarts (the journaled call time fixes the wake time).
	Timer func(args json.RawMessage) (time.Duration, error)

	// Resources lists what one call consumes, for placement (rate limits, pools).
	Resources func(args json.RawMessage) []Demand

	// Target names what a call reaches, for the node's circuit breaker of
	// it (package breaker): "http api.example.com", "sql db", "redis
	// 127.0.0.1:6379". After consecutive failed attempts on a target, calls
	// to it fail fast with CodeCircuitOpen for a cool-down. Nil or "": no
	// breaker.
	Target func(env Env, args json.RawMessage) string

	// Doc is a one-line description shown by tooling.
	Doc string
}

// Demand is an amount of a named resource that one step consumes.
type Demand struct {
	Resource string  `json:"resource"`
	Amount   float64 `json:"amount"`
}

// RetryPolicy bounds retries of attempts that failed with a retryable error.
type RetryPolicy struct {
	MaxAttempts int           // total attempts including the first; 1 means no retry
	Initial     time.Duration // delay before the second attempt
	Max         time.Duration // cap on any delay
	Multiplier  float64       // growth of the delay per attempt
}

// DefaultRetry is used by steps that set no policy: 4 attempts, 100ms, 200ms, 400ms.
var DefaultRetry = RetryPolicy{MaxAttempts: 4, Initial: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}

// Policy returns the step's retry policy with defaults applied.
func (s *Step) Policy() RetryPolicy {
	p := s.Retry
	if p.MaxAttempts == 0 {
		p = DefaultRetry
	}
	if p.Multiplier < 1 {
		p.Multiplier = 1
	}
	return p
}

// AttemptTimeout is how long one attempt of a call with args may take: the
// call's own deadline (Deadline), else the builtin's Timeout, else def.
func (s *Step) AttemptTimeout(args json.RawMessage, def time.Duration) time.Duration {
	if s.Deadline != nil {
		if d := s.Deadline(args); d > 0 {
			return d
		}
	}
	if s.Timeout > 0 {
		return s.Timeout
	}
	return def
}

// Budget bounds every attempt of a call with args, with the delays between
// them (see AttemptTimeout for def).
func (s *Step) Budget(args json.RawMessage, def time.Duration) time.Duration {
	p := s.Policy()
	total := time.Duration(p.MaxAttempts) * s.AttemptTimeout(args, def)
	for a := 2; a <= p.MaxAttempts; a++ {
		total += p.Delay(a)
	}
	return total
}

// Delay returns the wait before attempt n (n ≥ 2).
func (p RetryPolicy) Delay(n int) time.Duration {
	d := float64(p.Initial)
	for i := 2; i < n; i++ {
		d *= p.Multiplier
	}
	if p.Max > 0 && time.Duration(d) > p.Max {
		return p.Max
	}
	return time.Duration(d)
}

// Env is what a step's Exec may use on the node that executes it.
type Env interface {
	// Node is the name of the executing node.
	Node() string
	// HTTPClient is the node's outbound HTTP client (traced, pooled).
	HTTPClient() *http.Client
	// KV is the cluster-wide key/value store behind kv.*.
	KV() KVStore
	// Publish sends payload to subject for emit().
	Publish(ctx context.Context, subject string, payload []byte) error
}

// NodeEnv is an Env made of its parts, as a node assembles it for the steps
// it executes.
type NodeEnv struct {
	Name      string       // the node's name
	Client    *http.Client // its outbound HTTP client
	Store     KVStore      // the store behind kv.*
	Publisher func(ctx context.Context, subject string, payload []byte) error
	Opened    *Opened // its integrations (Use)
}

var _ Env = (*NodeEnv)(nil)

// Node implements Env.
func (e *NodeEnv) Node() string { return e.Name }

// HTTPClient implements Env.
func (e *NodeEnv) HTTPClient() *http.Client { return e.Client }

// KV implements Env.
func (e *NodeEnv) KV() KVStore { return e.Store }

// Integration returns the node's instance of integration name (nil if it
// has none): what Use reads.
func (e *NodeEnv) Integration(name string) any { return e.Opened.Get(name) }

// Publish implements Env.
func (e *NodeEnv) Publish(ctx context.Context, subject string, payload []byte) error {
	return e.Publisher(ctx, subject, payload)
}

// KVStore is the key/value store behind kv.get/put/delete.
type KVStore interface {
	Get(ctx context.Context, key string) (value []byte, found bool, err error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
}

// StepContext identifies the step an Exec call performs.
type StepContext struct {
	Run     string
	Step    string
	Attempt int
	// Key is the step's idempotency key, "<run>/<step>": the same for every
	// attempt and for a step executed again after a crash. Integrations pass
	// it on (http.* sends it as the Idempotency-Key header) so that the far
	// side can de-duplicate.
	Key string
}

type stepCtxKey struct{}

// WithStep returns ctx carrying sc; the engine calls it before Exec.
func WithStep(ctx context.Context, sc StepContext) context.Context {
	return context.WithValue(ctx, stepCtxKey{}, sc)
}

// StepFrom returns the step an Exec call performs (zero outside the engine).
func StepFrom(ctx context.Context) StepContext {
	sc, _ := ctx.Value(stepCtxKey{}).(StepContext)
	return sc
}

// SafeExec calls Exec, turning a panic into an internal error, so that one
// bad builtin cannot take a node down.
func (s *Step) SafeExec(ctx context.Context, env Env, args json.RawMessage) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Errorf(CodeInternal, "%s panicked: %v", s.Name, p)
		}
	}()
	return s.Exec(ctx, env, args)
}
