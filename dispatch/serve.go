package dispatch

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/telemetry"
)

// Handler executes a step sent directly and returns its result, or false to
// give no answer (the node is stopping: the coordinator places the step
// again when the node is lost).
type Handler func(ctx context.Context, env Envelope) (api.ResultEntry, bool)

// How many answers a node remembers, for requests sent again after the
// answer was lost: the last rememberCount, no older than rememberFor, in at
// most rememberBytes. A request sent again after that executes its step
// again, under the same idempotency key.
const (
	rememberCount = 1024
	rememberFor   = time.Minute
	rememberBytes = 8 << 20
)

// server answers the direct requests sent to one node.
type server struct {
	b       *bus.Bus
	journal *journal.Store
	base    context.Context
	handle  Handler
	idle    chan request   // to an executor waiting for one
	done    chan struct{}  // closed by stop: idle executors return
	running sync.WaitGroup // requests taken, until their answer is sent

	mu       sync.Mutex
	stopped  bool                  // no request is taken any more
	inFlight map[string]bool       // by request key: executing
	answers  map[string]answer     // by request key: answered lately
	order    []string              // keys of answers, oldest first
	bytes    int                   // held by answers
	now      func() time.Time      // for tests
	log      func(error, Envelope) // an answer that could not be sent
}

// answer is a reply sent, kept for a request sent again.
type answer struct {
	data []byte
	at   time.Time
}

// Serve answers the direct requests to node (Call) with handle, each in its
// own goroutine under a context derived from base, until stop is called;
// stop returns once the requests taken are answered (or given no answer by
// handle). A request sent again while its step executes is not executed
// again; one sent again after it was answered (the same step, attempt,
// builtin and arguments) gets the same answer, if it is among the ones
// remembered. onError learns of requests dropped and answers that could not
// be sent.
func Serve(b *bus.Bus, j *journal.Store, node string, base context.Context, handle Handler, onError func(error, Envelope)) (stop func(), err error) {
	s := &server{b: b, journal: j, base: base, handle: handle, idle: make(chan request), done: make(chan struct{}),
		inFlight: map[string]bool{}, answers: map[string]answer{}, now: time.Now, log: onError}
	unsubscribe, err := b.Subscribe(bus.ExecSubject(node), s.receive)
	if err != nil {
		return nil, err
	}
	return func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		unsubscribe()
		close(s.done)
		s.running.Wait()
	}, nil
}

// requestKey identifies a request across its re-sends: the step's attempt,
// and what it calls (a run resumed on another script version may call
// something else under the same step id).
func requestKey(env Envelope) string {
	h := fnv.New64a()
	h.Write([]byte(env.Builtin))
	h.Write([]byte{0})
	h.Write(env.Args)
	h.Write([]byte(env.ArgsRef))
	return env.Key + "/a" + strconv.Itoa(env.Attempt) + "/" + strconv.FormatUint(h.Sum64(), 36)
}

// receive takes one request, on the subscription's goroutine.
func (s *server) receive(m bus.Msg) {
	env, trace, err := decodeRequest(m.Data)
	if err != nil {
		s.log(fmt.Errorf("dispatch: dropping a direct request: %w", err), env)
		return
	}
	key := requestKey(env)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return // the coordinator sends it again, to a node that answers
	}
	if s.inFlight[key] {
		s.mu.Unlock()
		return // its answer is coming
	}
	if a, ok := s.answers[key]; ok {
		s.mu.Unlock()
		s.send(m.Reply, a.data, env)
		return
	}
	s.inFlight[key] = true
	s.running.Add(1) // until answered
	s.mu.Unlock()
	r := request{trace: trace, reply: m.Reply, key: key, env: env}
	select {
	case s.idle <- r:
	default:
		go s.executor(r)
	}
}

// request is a request taken, to be executed.
type request struct {
	trace      propagation.MapCarrier
	reply, key string
	env        Envelope
}

// executor executes r, then the requests handed to it while it waits idle
// (for up to idleFor): a goroutine already running, with its stack grown,
// takes a request sooner than a new one.
func (s *server) executor(r request) {
	idle := time.NewTimer(idleFor)
	defer idle.Stop()
	for {
		s.execute(r)
		s.running.Done()
		idle.Reset(idleFor)
		select {
		case r = <-s.idle:
		case <-idle.C:
			return
		case <-s.done:
			return
		}
	}
}

// idleFor is how long an executor waits for a next request.
const idleFor = 10 * time.Second

// execute executes one request's step and answers it.
func (s *server) execute(r request) {
	res, ok := s.handle(telemetry.Propagator.Extract(s.base, r.trace), r.env)
	if !ok {
		s.forget(r.key)
		return
	}
	data := encodeAnswer(res, "")
	if s.journal.IsLarge(data) {
		ref, err := s.journal.PutValue(s.base, res.Value)
		if err != nil {
			s.log(fmt.Errorf("dispatch: store a large result, to answer with it (the coordinator sends the request again): %w", err), r.env)
			s.forget(r.key)
			return
		}
		res.Value = nil
		data = encodeAnswer(res, ref)
	}
	s.send(r.reply, data, r.env)
	s.remember(r.key, answer{data: data, at: s.now()})
}

// forget lets a request that was not answered be executed when it comes again.
func (s *server) forget(key string) {
	s.mu.Lock()
	delete(s.inFlight, key)
	s.mu.Unlock()
}

func (s *server) send(reply string, data []byte, env Envelope) {
	if err := s.b.Publish(reply, nil, data); err != nil {
		s.log(fmt.Errorf("dispatch: answer (the coordinator sends the request again): %w", err), env)
	}
}

// remember keeps a sent answer, forgetting the oldest past the bounds.
func (s *server) remember(key string, a answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inFlight, key)
	s.answers[key] = a
	s.order = append(s.order, key)
	s.bytes += len(a.data)
	for len(s.order) > 0 {
		oldest := s.answers[s.order[0]]
		if len(s.order) <= rememberCount && s.bytes <= rememberBytes && s.now().Sub(oldest.at) < rememberFor {
			break
		}
		s.bytes -= len(oldest.data)
		delete(s.answers, s.order[0])
		s.order = s.order[1:]
	}
}
