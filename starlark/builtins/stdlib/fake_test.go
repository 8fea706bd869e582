package stdlib

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/rs/zerolog"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// fakeRuntime is a builtins.Runtime that executes every step in-process, the
// way the engine's co-located fast path does, minus the journal.
type fakeRuntime struct {
	env    *fakeEnv
	logs   bytes.Buffer
	logger zerolog.Logger

	mu    sync.Mutex
	calls []stepCall
	tags  map[string]string
}

// stepCall records one CallStep: the canonical arguments and result.
type stepCall struct {
	name   string
	local  bool
	args   string
	result string
	err    error
}

func newFake(t *testing.T) *fakeRuntime {
	t.Helper()
	rt := &fakeRuntime{env: newFakeEnv(), tags: map[string]string{}}
	rt.logger = zerolog.New(&rt.logs).Level(zerolog.DebugLevel)
	return rt
}

// CallStep implements builtins.Runtime: canonical args → Exec → canonical result,
// with the step's deadline (or 30s) on the context.
func (rt *fakeRuntime) CallStep(thread *starlark.Thread, step *builtins.Step, args any) (json.RawMessage, error) {
	raw, err := builtins.Canonical(args)
	if err != nil {
		return nil, err
	}
	timeout := 30 * time.Second
	if step.Timeout > 0 {
		timeout = step.Timeout
	}
	if step.Deadline != nil {
		if d := step.Deadline(raw); d > 0 {
			timeout = d
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	call := stepCall{name: step.Name, local: step.Local, args: string(raw)}
	res, err := step.Exec(ctx, rt.env, raw)
	var out json.RawMessage
	if err == nil {
		out, err = builtins.Canonical(res)
	}
	if err != nil {
		err = builtins.AsStepError(err)
	}
	call.result, call.err = string(out), err
	rt.mu.Lock()
	rt.calls = append(rt.calls, call)
	rt.mu.Unlock()
	return out, err
}

// Tag implements builtins.Runtime.
func (rt *fakeRuntime) Tag(thread *starlark.Thread, attrs map[string]string) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for k, v := range attrs {
		rt.tags[k] = v
	}
	return nil
}

// Logger implements builtins.Runtime.
func (rt *fakeRuntime) Logger(thread *starlark.Thread) *zerolog.Logger { return &rt.logger }

func (rt *fakeRuntime) stepCalls() []stepCall {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]stepCall(nil), rt.calls...)
}

// run executes src as test.star with the standard builtins of a fresh registry
// plus extra globals, on a thread carrying rt.
func (rt *fakeRuntime) run(t *testing.T, src string, extra starlark.StringDict) (starlark.StringDict, error) {
	t.Helper()
	r := builtins.NewRegistry()
	Register(r)
	pre := r.Predeclared()
	for k, v := range extra {
		pre[k] = v
	}
	thread := &starlark.Thread{Name: t.Name()}
	builtins.SetRuntime(thread, rt)
	opts := &syntax.FileOptions{TopLevelControl: true, While: true}
	return starlark.ExecFileOptions(opts, thread, "test.star", src, pre)
}

// got runs src, which must succeed, and returns repr(got).
func (rt *fakeRuntime) got(t *testing.T, src string, extra starlark.StringDict) string {
	t.Helper()
	globals, err := rt.run(t, src, extra)
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, src)
	}
	v, ok := globals["got"]
	if !ok {
		t.Fatalf("script set no global got:\n%s", src)
	}
	return v.String()
}

// fakeEnv is a builtins.Env with a real HTTP client, an in-memory KV store and
// a recording Publish.
type fakeEnv struct {
	client *http.Client
	kv     *memKV

	mu         sync.Mutex
	published  []published
	publishErr error
}

type published struct {
	subject string
	payload string
}

func newFakeEnv() *fakeEnv {
	return &fakeEnv{client: &http.Client{}, kv: &memKV{data: map[string][]byte{}}}
}

func (e *fakeEnv) Node() string             { return "test-node" }
func (e *fakeEnv) HTTPClient() *http.Client { return e.client }
func (e *fakeEnv) KV() builtins.KVStore     { return e.kv }

func (e *fakeEnv) Publish(ctx context.Context, subject string, payload []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.publishErr != nil {
		return e.publishErr
	}
	e.published = append(e.published, published{subject, string(payload)})
	return nil
}

// memKV is an in-memory builtins.KVStore; err, when set, fails every call.
type memKV struct {
	mu   sync.Mutex
	data map[string][]byte
	err  error
}

func (m *memKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, false, m.err
	}
	v, ok := m.data[key]
	return v, ok, nil
}

func (m *memKV) Put(ctx context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.data[key] = append([]byte(nil), value...)
	return nil
}

func (m *memKV) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	delete(m.data, key)
	return nil
}

func (m *memKV) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ks []string
	for k := range m.data {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// evalMsg returns the message of a script error without its backtrace, and
// checks that the backtrace points into test.star.
func evalMsg(t *testing.T, err error) string {
	t.Helper()
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v (%T) is not a *starlark.EvalError", err, err)
	}
	if !strings.Contains(ee.Backtrace(), "test.star:") {
		t.Errorf("backtrace does not show the script position:\n%s", ee.Backtrace())
	}
	return ee.Msg
}

// stepErr returns the *builtins.StepError inside err, failing the test if none.
func stepErr(t *testing.T, err error) *builtins.StepError {
	t.Helper()
	var se *builtins.StepError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) carries no *builtins.StepError", err, err)
	}
	return se
}
