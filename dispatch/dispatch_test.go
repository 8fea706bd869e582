package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/starlark/builtins"
)

// lostNodes is a Lost whose nodes in gone are lost from the start.
type lostNodes struct{ gone map[string]bool }

func (l lostNodes) Lost(node string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	if l.gone[node] {
		close(ch)
	}
	return ch, func() {}
}

type fixture struct {
	b *bus.Bus
	j *journal.Store
	d *Dispatcher
}

func newFixture(t *testing.T, lost ...string) *fixture {
	t.Helper()
	b := bustest.Open(t, bus.Options{Name: "n1"})
	j := journal.NewStore(b)
	gone := map[string]bool{}
	for _, n := range lost {
		gone[n] = true
	}
	d, err := New(Options{Bus: b, Journal: j, Cluster: lostNodes{gone}, Node: "n1", Nonce: "t", ResendAfter: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return &fixture{b: b, j: j, d: d}
}

// serve answers node's direct requests with handle, failing t on errors.
func (f *fixture) serve(t *testing.T, node string, handle Handler) {
	t.Helper()
	stop, err := Serve(f.b, f.j, node, context.Background(), handle, func(err error, env Envelope) { t.Errorf("serve %s: %v", env.Step, err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

func envelope(step string) Envelope {
	return Envelope{Run: "r1", Step: step, Attempt: 1, Builtin: "test.echo", Args: json.RawMessage(`"hi"`), Key: "r1/" + step, Deadline: time.Now().Add(10 * time.Second)}
}

func echo(execs *atomic.Int64) Handler {
	return func(_ context.Context, env Envelope) (api.ResultEntry, bool) {
		execs.Add(1)
		return api.ResultEntry{Step: env.Step, Value: env.Args, Node: "n2", Attempts: env.Attempt}, true
	}
}

// TestCallAnswered: a direct call returns the executing node's result, and
// the step executes under the caller's trace.
func TestCallAnswered(t *testing.T) {
	f := newFixture(t)
	var execs atomic.Int64
	traces := make(chan trace.SpanContext, 1)
	f.serve(t, "n2", func(ctx context.Context, env Envelope) (api.ResultEntry, bool) {
		traces <- trace.SpanContextFromContext(ctx)
		return echo(&execs)(ctx, env)
	})
	caller := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled})
	res, err := f.d.Call(trace.ContextWithSpanContext(context.Background(), caller), "n2", envelope("1"))
	if err != nil || string(res.Value) != `"hi"` || res.Node != "n2" || res.Step != "1" || execs.Load() != 1 {
		t.Fatalf("call: %+v, %v, %d executions", res, err, execs.Load())
	}
	if got := <-traces; got.TraceID() != caller.TraceID() || got.SpanID() != caller.SpanID() || !got.IsRemote() {
		t.Fatalf("the step's trace: %v, want the caller's %v", got, caller)
	}
}

// TestCallSentAgainAfterSilence: a request nobody heard (the node was not
// listening yet: a lost message) is sent again until it is answered.
func TestCallSentAgainAfterSilence(t *testing.T) {
	f := newFixture(t)
	var sent atomic.Int64
	stop, err := f.b.Subscribe(bus.ExecSubject("n2"), func(bus.Msg) { sent.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	type outcome struct {
		res api.ResultEntry
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := f.d.Call(context.Background(), "n2", envelope("1"))
		done <- outcome{res, err}
	}()
	bustest.PollUntil(t, func() bool { return sent.Load() >= 1 })
	var execs atomic.Int64
	f.serve(t, "n2", echo(&execs))
	o := <-done
	if o.err != nil || string(o.res.Value) != `"hi"` || execs.Load() != 1 {
		t.Fatalf("call: %+v, %v; %d executions", o.res, o.err, execs.Load())
	}
	bustest.PollUntil(t, func() bool { return sent.Load() >= 2 }) // the counter hears the second send too
}

// TestServeExecutesOnce: a request sent again while its step executes is not
// executed again, and one sent again after its answer gets that answer.
func TestServeExecutesOnce(t *testing.T) {
	f := newFixture(t)
	var execs atomic.Int64
	release := make(chan struct{})
	f.serve(t, "n2", func(ctx context.Context, env Envelope) (api.ResultEntry, bool) {
		<-release
		return echo(&execs)(ctx, env)
	})
	var sent atomic.Int64
	stop, err := f.b.Subscribe(bus.ExecSubject("n2"), func(bus.Msg) { sent.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := f.d.Call(context.Background(), "n2", envelope("1"))
		done <- err
	}()
	bustest.PollUntil(t, func() bool { return sent.Load() >= 3 }) // sent again twice while executing
	close(release)
	if err := <-done; err != nil || execs.Load() != 1 {
		t.Fatalf("call: %v, %d executions", err, execs.Load())
	}

	// The same request again, after its answer: answered from memory.
	answers := make(chan bus.Msg, 1)
	stop2, err := f.b.Subscribe("test.answer", func(m bus.Msg) { answers <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	if err := f.b.PublishRequest(bus.ExecSubject("n2"), "test.answer", encodeRequest(envelope("1"), nil)); err != nil {
		t.Fatal(err)
	}
	m := <-answers
	res, _, err := decodeAnswer(m.Data)
	if err != nil || string(res.Value) != `"hi"` || execs.Load() != 1 {
		t.Fatalf("answer again: %+v, %v, %d executions", res, err, execs.Load())
	}
	// The next attempt of the step is a request of its own.
	env := envelope("1")
	env.Attempt = 2
	if _, err := f.d.Call(context.Background(), "n2", env); err != nil || execs.Load() != 2 {
		t.Fatalf("attempt 2: %v, %d executions", err, execs.Load())
	}
}

func TestCallNodeLost(t *testing.T) {
	f := newFixture(t, "ghost")
	if _, err := f.d.Call(context.Background(), "ghost", envelope("1")); !errors.Is(err, ErrNodeLost) {
		t.Fatalf("call to a lost node: %v", err)
	}
}

// TestCallUnansweredByDeadline: a node that never answers (stopping) gives
// the step a timeout result once its deadline and a grace period pass.
func TestCallUnansweredByDeadline(t *testing.T) {
	f := newFixture(t)
	f.serve(t, "n2", func(context.Context, Envelope) (api.ResultEntry, bool) { return api.ResultEntry{}, false })
	env := envelope("1")
	env.Deadline = time.Now().Add(-5*time.Second + 200*time.Millisecond)
	res, err := f.d.Call(context.Background(), "n2", env)
	if err != nil || res.Error == nil || res.Error.Code != builtins.CodeTimeout || !strings.Contains(res.Error.Message, "node n2 returned no result") {
		t.Fatalf("call: %+v, %v", res, err)
	}
}

func TestCallCancelled(t *testing.T) {
	f := newFixture(t)
	cause := errors.New("run cancelled")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause) // and nobody answers
	if _, err := f.d.Call(ctx, "n2", envelope("1")); !errors.Is(err, cause) {
		t.Fatalf("call cancelled: %v", err)
	}
}

// TestCallLargeResult: a result too large for a reply travels as a journal
// value and arrives whole.
func TestCallLargeResult(t *testing.T) {
	f := newFixture(t)
	big := json.RawMessage(fmt.Sprintf("%q", strings.Repeat("x", 100<<10)))
	f.serve(t, "n2", func(_ context.Context, env Envelope) (api.ResultEntry, bool) {
		return api.ResultEntry{Step: env.Step, Value: big, Node: "n2", Attempts: 1}, true
	})
	res, err := f.d.Call(context.Background(), "n2", envelope("1"))
	if err != nil || !bytes.Equal(res.Value, big) {
		t.Fatalf("large result: %d bytes, %v", len(res.Value), err)
	}
}

// TestServeRemembersBoundedAnswers: the answers kept for requests sent again
// are bounded by count, bytes and age.
func TestServeRemembersBoundedAnswers(t *testing.T) {
	now := time.Now()
	s := &server{inFlight: map[string]bool{}, answers: map[string]answer{}, now: func() time.Time { return now }}
	for i := range rememberCount + 10 {
		s.remember(fmt.Sprint(i), answer{data: []byte("x"), at: now})
	}
	if len(s.answers) != rememberCount || len(s.order) != rememberCount {
		t.Fatalf("by count: %d answers, %d in order", len(s.answers), len(s.order))
	}
	if _, ok := s.answers["9"]; ok {
		t.Fatal("the oldest answers are kept")
	}
	s.remember("big", answer{data: make([]byte, rememberBytes), at: now})
	if len(s.answers) != 1 || s.bytes != rememberBytes {
		t.Fatalf("by bytes: %d answers, %d bytes", len(s.answers), s.bytes)
	}
	s = &server{inFlight: map[string]bool{}, answers: map[string]answer{}, now: func() time.Time { return now }}
	s.remember("old", answer{data: []byte("x"), at: now})
	now = now.Add(rememberFor)
	s.remember("new", answer{data: []byte("y"), at: now})
	if _, ok := s.answers["old"]; ok || len(s.answers) != 1 {
		t.Fatalf("by age: %d answers", len(s.answers))
	}
}

// TestServeDropsMalformedRequest: a request that does not decode (JSON, a
// node of another build) is dropped and said so; the node goes on answering.
func TestServeDropsMalformedRequest(t *testing.T) {
	f := newFixture(t)
	errs := make(chan error, 4)
	var execs atomic.Int64
	stop, err := Serve(f.b, f.j, "n2", context.Background(), echo(&execs), func(err error, _ Envelope) { errs <- err })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, data := range [][]byte{[]byte(`{"run":"r1"}`), nil, {wireVersion, 0xff}} {
		if err := f.b.Publish(bus.ExecSubject("n2"), nil, data); err != nil {
			t.Fatal(err)
		}
		if err := <-errs; !strings.Contains(err.Error(), "dropping a direct request") {
			t.Errorf("%q: %v", data, err)
		}
	}
	if res, err := f.d.Call(context.Background(), "n2", envelope("1")); err != nil || execs.Load() != 1 || string(res.Value) != `"hi"` {
		t.Fatalf("after malformed requests: %+v, %v", res, err)
	}
}

// TestCallNoResponders: a request to a node nobody listens for (stopped, or
// stopping: NATS answers "no responders" at once) is silence, not an
// answer: the call sends it again until the node answers.
func TestCallNoResponders(t *testing.T) {
	f := newFixture(t)
	done := make(chan error, 1)
	go func() {
		_, err := f.d.Call(context.Background(), "n2", envelope("1"))
		done <- err
	}()
	var execs atomic.Int64
	select {
	case err := <-done:
		t.Fatalf("the call ended with nobody listening: %v", err)
	case <-time.After(120 * time.Millisecond): // two re-sends, each answered "no responders"
	}
	f.serve(t, "n2", echo(&execs))
	if err := <-done; err != nil || execs.Load() != 1 {
		t.Fatalf("call: %v, %d executions", err, execs.Load())
	}
}

// TestServeStopWaitsForAnswers: stopping a node's server waits until the
// requests it took are answered, so that a step executed is not executed
// again elsewhere for want of its answer.
func TestServeStopWaitsForAnswers(t *testing.T) {
	f := newFixture(t)
	started, release := make(chan struct{}), make(chan struct{})
	var execs atomic.Int64
	stop, err := Serve(f.b, f.j, "n2", context.Background(), func(ctx context.Context, env Envelope) (api.ResultEntry, bool) {
		close(started)
		<-release
		return echo(&execs)(ctx, env)
	}, func(err error, env Envelope) { t.Errorf("serve: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.d.Call(context.Background(), "n2", envelope("1"))
		done <- err
	}()
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("stop returned while a request was executing")
	case <-time.After(50 * time.Millisecond): // stop is waiting
	}
	close(release)
	<-stopped
	if err := <-done; err != nil || execs.Load() != 1 {
		t.Fatalf("call: %v, %d executions", err, execs.Load())
	}
}

// TestRememberedAnswerIsForTheSameCall: an answer is given again only to the
// same call: the same step and attempt calling another builtin or with
// other arguments (a run resumed on another script version) executes.
func TestRememberedAnswerIsForTheSameCall(t *testing.T) {
	f := newFixture(t)
	var execs atomic.Int64
	f.serve(t, "n2", echo(&execs))
	if _, err := f.d.Call(context.Background(), "n2", envelope("1")); err != nil {
		t.Fatal(err)
	}
	other := envelope("1")
	other.Args = json.RawMessage(`"bye"`)
	res, err := f.d.Call(context.Background(), "n2", other)
	if err != nil || string(res.Value) != `"bye"` || execs.Load() != 2 {
		t.Fatalf("other arguments: %+v, %v, %d executions", res, err, execs.Load())
	}
}
