package dispatch

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

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
	idle    chan request // to an executor waiting for one

	mu       sync.Mutex
	inFlight map[string]bool       // by request key: executing
	answers  map[string]answer     // by request key: answered lately
	order    []string              // keys of answers, oldest first
	bytes    int                   // held by answers
	now      func() time.Time      // for tests
	log      func(error, Envelope) // an answer that could not be sent
}

// answer is a reply sent, kept for a request sent again.
type answer struct {
	hdr  bus.Header
	data []byte
	at   time.Time
}

// Serve answers the direct requests to node (Call) with handle, each in its
// own goroutine under a context derived from base, until stop is called.
// A request sent again while its step executes is not executed again; one
// sent again after it was answered gets the same answer, if it is among the
// ones remembered. onError learns of answers that could not be sent.
func Serve(b *bus.Bus, j *journal.Store, node string, base context.Context, handle Handler, onError func(error, Envelope)) (stop func(), err error) {
	s := &server{b: b, journal: j, base: base, handle: handle, idle: make(chan request), inFlight: map[string]bool{}, answers: map[string]answer{}, now: time.Now, log: onError}
	return b.Subscribe(bus.ExecSubject(node), s.receive)
}

// receive takes one request, on the subscription's goroutine.
func (s *server) receive(m bus.Msg) {
	env, err := decodeEnvelope(m.Data)
	if err != nil {
		s.log(fmt.Errorf("dispatch: dropping a direct request: %w", err), env)
		return
	}
	reply := m.Header.Get(hdrReply)
	key := env.Key + "/a" + strconv.Itoa(env.Attempt)
	s.mu.Lock()
	if s.inFlight[key] {
		s.mu.Unlock()
		return // its answer is coming
	}
	if a, ok := s.answers[key]; ok {
		s.mu.Unlock()
		s.send(reply, a.hdr, a.data, env)
		return
	}
	s.inFlight[key] = true
	s.mu.Unlock()
	r := request{hdr: m.Header, reply: reply, key: key, env: env}
	select {
	case s.idle <- r:
	default:
		go s.executor(r)
	}
}

// request is a request taken, to be executed.
type request struct {
	hdr        bus.Header
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
		s.execute(r.hdr, r.reply, r.key, r.env)
		idle.Reset(idleFor)
		select {
		case r = <-s.idle:
		case <-idle.C:
			return
		}
	}
}

// idleFor is how long an executor waits for a next request.
const idleFor = 10 * time.Second

// execute executes one request's step and answers it.
func (s *server) execute(hdr bus.Header, reply, key string, env Envelope) {
	res, ok := s.handle(telemetry.Propagator.Extract(s.base, hdr), env)
	if !ok {
		s.mu.Lock()
		delete(s.inFlight, key)
		s.mu.Unlock()
		return
	}
	var ahdr bus.Header
	data := encodeResult(res)
	if s.journal.IsLarge(data) {
		ref, err := s.journal.PutValue(s.base, res.Value)
		if err != nil {
			s.log(fmt.Errorf("dispatch: store a large result, to answer with it (the coordinator sends the request again): %w", err), env)
			s.mu.Lock()
			delete(s.inFlight, key)
			s.mu.Unlock()
			return
		}
		res.Value = nil
		data = encodeResult(res)
		ahdr = bus.Header{hdrValue: {ref}}
	}
	s.send(reply, ahdr, data, env)
	s.remember(key, answer{hdr: ahdr, data: data, at: s.now()})
}

func (s *server) send(reply string, hdr bus.Header, data []byte, env Envelope) {
	if err := s.b.Publish(reply, hdr, data); err != nil {
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
