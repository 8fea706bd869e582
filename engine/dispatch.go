package engine

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// Envelope is what travels through the step inbox of the executing node.
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

// hdrReply is the header of a step envelope naming where the worker
// notifies the coordinator.
const hdrReply = "Drover-Reply"

// dispatcher sends steps to other nodes' workers and waits for their
// results: the worker's notification, a core message to this coordinator's
// reply inbox, or, should that be lost, the result in the journal.
type dispatcher struct {
	b       *bus.Bus
	journal *journal.Store
	cluster *cluster.Membership
	node    string
	inbox   string // reply subject prefix of this incarnation
	next    atomic.Uint64
	replies sync.Map // token → chan api.ResultEntry
	stop    func()
}

func newDispatcher(b *bus.Bus, j *journal.Store, c *cluster.Membership, node string) (*dispatcher, error) {
	d := &dispatcher{b: b, journal: j, cluster: c, node: node, inbox: bus.ReplyInbox(node, newNonce())}
	var err error
	d.stop, err = b.Subscribe(d.inbox+"*", d.onReply)
	return d, err
}

func (d *dispatcher) close() { d.stop() }

// send dispatches a step to node's worker through its inbox stream and waits
// for the worker's notification that the result is journaled. It returns
// errNodeLost if node stops heartbeating first.
func (d *dispatcher) send(ctx context.Context, node string, env Envelope) (api.ResultEntry, error) {
	token := strconv.FormatUint(d.next.Add(1), 36)
	ch := make(chan api.ResultEntry, 1)
	d.replies.Store(token, ch)
	defer d.replies.Delete(token)
	if d.journal.IsLarge(env.Args) {
		var err error
		if env.ArgsRef, err = d.journal.PutValue(ctx, env.Args); err != nil {
			return api.ResultEntry{}, err
		}
		env.Args = nil
	}
	data, _ := api.EncodeJSON(env)
	hdr := bus.Header{hdrReply: {d.inbox + token}}
	telemetry.Propagator.Inject(ctx, hdr)
	pend, err := d.b.PublishStepAsync(node, env.Key+"/a"+strconv.Itoa(env.Attempt), hdr, data)
	if err != nil {
		return api.ResultEntry{}, err
	}
	wait := time.NewTimer(time.Until(env.Deadline) + 5*time.Second)
	defer wait.Stop()
	var lost <-chan struct{}
	if node != d.node {
		var release func()
		lost, release = d.cluster.Lost(node)
		defer release()
	}
	// The worker's notification is a core message and can be lost (a route
	// reconnecting): look in the journal now and then as well.
	look := time.NewTicker(2 * time.Second)
	defer look.Stop()
	for {
		select {
		case res := <-ch:
			if res.Step == "" { // a large result: read it from the journal
				p, err := d.journal.Result(ctx, env.Run, env.Step)
				if err != nil {
					return api.ResultEntry{}, err
				}
				return *p, nil
			}
			return res, nil
		case <-look.C:
			if res, err := d.journal.Result(ctx, env.Run, env.Step); err == nil {
				return *res, nil
			}
		case <-lost:
			return api.ResultEntry{}, errNodeLost
		case err := <-pend.Err():
			if err := pend.Resend(ctx, err); err != nil {
				return api.ResultEntry{}, err
			}
		case <-wait.C:
			// The notification may be lost while the result is journaled: look.
			if res, err := d.journal.Result(ctx, env.Run, env.Step); err == nil {
				return *res, nil
			}
			return api.ResultEntry{Step: env.Step, Node: node, Attempts: env.Attempt,
				Error: builtins.Errorf(builtins.CodeTimeout, "%s: node %s returned no result by the step's deadline", env.Builtin, node)}, nil
		case <-ctx.Done():
			return api.ResultEntry{}, &script.StepFailure{Builtin: env.Builtin, Step: env.Step, Code: builtins.CodeCancelled, Message: cancelReason(ctx)}
		}
	}
}

func (d *dispatcher) onReply(m bus.Msg) {
	token := m.Subject[len(d.inbox):]
	if ch, ok := d.replies.Load(token); ok {
		var res api.ResultEntry // empty: journaled, too large to send
		if len(m.Data) == 0 || json.Unmarshal(m.Data, &res) == nil {
			select {
			case ch.(chan api.ResultEntry) <- res:
			default:
			}
		}
	}
}
