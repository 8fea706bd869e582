// Package dispatch carries a step from the node coordinating its run to the
// node placement chose to execute it, and the step's result back. It has two
// ways, chosen by the coordinator per step:
//
//   - Send, through the executing node's step inbox (a stream): the worker
//     journals the result itself, then tells the coordinator. This is the
//     way of steps whose call is journaled before they execute (steps not
//     measured short, arguments stored as values): should the coordinator be
//     lost, the result it never heard of is in the journal for the node that
//     adopts the run.
//   - Call, directly: the request is a core NATS message to the executing
//     node (Serve), answered by a core message carrying the result, which the
//     coordinator journals with the step's call, in one entry, as it does for
//     a short step it executes itself. Nothing is written on the way: a
//     short step costs one journal append wherever it runs. A request met
//     with silence is sent again; the executing node recognises it: it does
//     not execute the step again while it executes it, nor while it
//     remembers the answer it sent.
//
// A lost executing node (Membership.Lost) ends either way with ErrNodeLost:
// the coordinator places the step again.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/propagation"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// Feature names direct calls (Call, Serve): a coordinator calls a node
// directly only once every node has it (cluster.Membership.AllHave).
const Feature = "dispatch.direct.v1"

// ErrNodeLost reports that the node executing a step stopped heartbeating
// before it answered.
var ErrNodeLost = errors.New("dispatch: executing node lost")

// Envelope is one step sent to the node that executes it.
type Envelope struct {
	Run      string          `json:"run"`
	Step     string          `json:"step"`
	Attempt  int             `json:"attempt"`
	Builtin  string          `json:"builtin"`
	Args     json.RawMessage `json:"args"`
	ArgsRef  string          `json:"args_ref,omitempty"` // large Args, stored as a journal value
	Deadline time.Time       `json:"deadline"`
	Key      string          `json:"key"` // idempotency key <run>/<step>
	Demand   []meter.Demand  `json:"demand,omitempty"`
}

// hdrReply is the header of an inbox envelope naming where the worker tells
// the coordinator that the result is journaled.
const hdrReply = "Drover-Reply"

// Lost tells when a node is lost: cluster.Membership implements it.
type Lost interface {
	Lost(node string) (lost <-chan struct{}, release func())
}

// Options configure a Dispatcher.
type Options struct {
	Bus     *bus.Bus
	Journal *journal.Store
	Cluster Lost
	// Node is this node's name; Nonce tells this process from the node's
	// earlier ones, so that a restarted coordinator gets no stale replies.
	Node, Nonce string
	// ResendAfter is how long a direct call waits for its answer before
	// sending the request again (default 1s), then twice that, then four
	// times that, and so on every four times that.
	ResendAfter time.Duration
	// Logger receives answers that are not answers (undecodable: a node of
	// another build) (default: none).
	Logger *zerolog.Logger
}

// Dispatcher sends this node's steps to other nodes (and its own worker)
// and waits for their results.
type Dispatcher struct {
	opts    Options
	inbox   string // reply subject prefix of this incarnation
	next    atomic.Uint64
	replies sync.Map // token → chan bus.Msg
	stop    func()
}

// New subscribes to the node's replies.
func New(opts Options) (*Dispatcher, error) {
	if opts.ResendAfter <= 0 {
		opts.ResendAfter = time.Second
	}
	if opts.Logger == nil {
		nop := zerolog.Nop()
		opts.Logger = &nop
	}
	d := &Dispatcher{opts: opts, inbox: bus.ReplyInbox(opts.Node, opts.Nonce)}
	var err error
	d.stop, err = opts.Bus.Subscribe(d.inbox+"*", d.onReply)
	return d, err
}

// Close stops the replies.
func (d *Dispatcher) Close() { d.stop() }

func (d *Dispatcher) onReply(m bus.Msg) {
	if ch, ok := d.replies.Load(m.Subject[len(d.inbox):]); ok {
		select {
		case ch.(chan bus.Msg) <- m:
		default:
		}
	}
}

// waiter is one request's reply subject and where its answer arrives.
type waiter struct {
	d       *Dispatcher
	token   string
	replies chan bus.Msg
}

func (d *Dispatcher) waiter() *waiter {
	w := &waiter{d: d, token: strconv.FormatUint(d.next.Add(1), 36), replies: make(chan bus.Msg, 4)}
	d.replies.Store(w.token, w.replies)
	return w
}

func (w *waiter) close() { w.d.replies.Delete(w.token) }

// header is what travels with a request: where to answer, and the trace.
func (w *waiter) header(ctx context.Context) bus.Header {
	hdr := bus.Header{hdrReply: {w.d.inbox + w.token}}
	telemetry.Propagator.Inject(ctx, hdr)
	return hdr
}

// Send dispatches a step to node's worker through its inbox stream and waits
// for the worker's notification that the result is journaled. It returns
// ErrNodeLost if node stops heartbeating first, and ctx's error if ctx ends.
func (d *Dispatcher) Send(ctx context.Context, node string, env Envelope) (api.ResultEntry, error) {
	w := d.waiter()
	defer w.close()
	if d.opts.Journal.IsLarge(env.Args) {
		var err error
		if env.ArgsRef, err = d.opts.Journal.PutValue(ctx, env.Args); err != nil {
			return api.ResultEntry{}, err
		}
		env.Args = nil
	}
	data, _ := api.EncodeJSON(env)
	pend, err := d.opts.Bus.PublishStepAsync(node, env.Key+"/a"+strconv.Itoa(env.Attempt), w.header(ctx), data)
	if err != nil {
		return api.ResultEntry{}, err
	}
	journaled := func() (api.ResultEntry, bool) {
		res, err := d.opts.Journal.Result(ctx, env.Run, env.Step)
		if err != nil {
			return api.ResultEntry{}, false
		}
		return *res, true
	}
	// The worker's notification is a core message and can be lost (a route
	// reconnecting): look in the journal now and then as well.
	return d.await(ctx, node, env, w, awaitOptions{
		silence:  func() time.Duration { return 2 * time.Second },
		silent:   journaled,
		deadline: journaled,
		failed:   pend.Err(),
		resend:   pend.Resend,
		answer: func(m bus.Msg) (api.ResultEntry, bool, error) {
			if len(m.Data) == 0 { // a large result: read it from the journal
				p, err := d.opts.Journal.Result(ctx, env.Run, env.Step)
				if err != nil {
					return api.ResultEntry{}, true, err
				}
				return *p, true, nil
			}
			var res api.ResultEntry
			if err := json.Unmarshal(m.Data, &res); err != nil {
				d.dropped(env, err)
				return res, false, nil // the journal has it, if the worker wrote it
			}
			return res, true, nil
		},
	})
}

// Call sends a step to node directly and returns its result, not journaled:
// the caller journals it. It sends the request again after a silence (or
// NATS's "no responders") of ResendAfter, then twice and four times that,
// and so on; it returns ErrNodeLost if node stops heartbeating first, and
// ctx's error if ctx ends. Arguments must not be large (journal.Store.IsLarge):
// Send those.
func (d *Dispatcher) Call(ctx context.Context, node string, env Envelope) (api.ResultEntry, error) {
	w := d.waiter()
	defer w.close()
	trace := propagation.MapCarrier{}
	telemetry.Propagator.Inject(ctx, trace)
	data := encodeRequest(env, trace)
	reply := d.inbox + w.token
	send := func() error { return d.opts.Bus.PublishRequest(bus.ExecSubject(node), reply, data) }
	if err := send(); err != nil {
		return api.ResultEntry{}, err
	}
	next := d.opts.ResendAfter
	return d.await(ctx, node, env, w, awaitOptions{
		silence: func() time.Duration {
			cur := next
			next = min(2*next, 4*d.opts.ResendAfter)
			return cur
		},
		silent: func() (api.ResultEntry, bool) { send(); return api.ResultEntry{}, false },
		answer: func(m bus.Msg) (api.ResultEntry, bool, error) {
			if m.Header.Get("Status") == "503" {
				// No responders: nobody listens on the node's subject (it
				// stopped, or is stopping). Silence: send again until it
				// answers or is lost.
				return api.ResultEntry{}, false, nil
			}
			res, ref, err := decodeAnswer(m.Data)
			if err != nil {
				d.dropped(env, err)
				return res, false, nil
			}
			if ref != "" {
				res.Value, err = d.opts.Journal.Value(ctx, ref)
			}
			return res, true, err
		},
	})
}

// Notify tells the coordinator that sent a step through the inbox (hdr is the
// envelope's header) that its result, res, is journaled.
func Notify(b *bus.Bus, j *journal.Store, hdr bus.Header, res api.ResultEntry) {
	reply := hdr.Get(hdrReply)
	if reply == "" {
		return
	}
	data, _ := api.EncodeJSON(res)
	if j.IsLarge(data) {
		data = nil // the coordinator reads it from the journal
	}
	b.Publish(reply, nil, data)
}

// awaitOptions are what Send and Call do differently while they wait.
type awaitOptions struct {
	silence  func() time.Duration                                    // how long until silent is called (again)
	silent   func() (api.ResultEntry, bool)                          // after a silence: a result found otherwise?
	deadline func() (api.ResultEntry, bool)                          // past the deadline: a result found otherwise?
	failed   <-chan error                                            // the request's publish failed
	resend   func(context.Context, error) error                      // after failed
	answer   func(bus.Msg) (res api.ResultEntry, ok bool, err error) // ok: an answer (else keep waiting)
}

// dropped logs an answer to env's request that was no answer.
func (d *Dispatcher) dropped(env Envelope, err error) {
	d.opts.Logger.Warn().Err(err).Str("run", env.Run).Str("step", env.Step).Msg("dropping an undecodable answer to a step; waiting for another")
}

// await waits for the answer to a request sent to node.
func (d *Dispatcher) await(ctx context.Context, node string, env Envelope, w *waiter, o awaitOptions) (api.ResultEntry, error) {
	deadline := time.NewTimer(time.Until(env.Deadline) + 5*time.Second)
	defer deadline.Stop()
	var lost <-chan struct{}
	if node != d.opts.Node {
		var release func()
		lost, release = d.opts.Cluster.Lost(node)
		defer release()
	}
	silence := time.NewTimer(o.silence())
	defer silence.Stop()
	for {
		select {
		case m := <-w.replies:
			if res, ok, err := o.answer(m); ok || err != nil {
				return res, err
			}
		case <-silence.C:
			if res, ok := o.silent(); ok {
				return res, nil
			}
			silence.Reset(o.silence())
		case <-lost:
			return api.ResultEntry{}, ErrNodeLost
		case err := <-o.failed:
			if err := o.resend(ctx, err); err != nil {
				return api.ResultEntry{}, err
			}
		case <-deadline.C:
			// The answer may be lost while the result is journaled: look.
			if o.deadline != nil {
				if res, ok := o.deadline(); ok {
					return res, nil
				}
			}
			return api.ResultEntry{Step: env.Step, Node: node, Attempts: env.Attempt,
				Error: builtins.Errorf(builtins.CodeTimeout, "%s: node %s returned no result by the step's deadline", env.Builtin, node)}, nil
		case <-ctx.Done():
			return api.ResultEntry{}, context.Cause(ctx)
		}
	}
}
