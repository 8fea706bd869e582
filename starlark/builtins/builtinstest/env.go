package builtinstest

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/droverhq/drover/starlark/builtins"
)

// Node is the name an Env gives as its node's.
const Node = "test-node"

// Env is a builtins.Env for tests: a settable HTTP client, an in-memory
// key/value store and a Publish that records what emit() sends.
type Env struct {
	// Client is what HTTPClient returns; NewEnv sets a plain &http.Client{}.
	// Point it at an httptest.Server's Client() or give it a Transport.
	Client *http.Client
	// Store is what KV returns.
	Store *KVStore
	// Integrations are the instances builtins.Use finds, by integration name.
	Integrations map[string]any

	mu         sync.Mutex
	published  []Message
	publishErr error
}

var _ builtins.Env = (*Env)(nil)

// A Message is one payload Env.Publish sent.
type Message struct {
	Subject string
	Payload string // the payload as published (JSON for emit)
}

// NewEnv returns an Env with a plain HTTP client, an empty store and nothing
// published.
func NewEnv() *Env { return &Env{Client: &http.Client{}, Store: NewKVStore()} }

// Node implements builtins.Env; it returns Node.
func (e *Env) Node() string { return Node }

// Integration returns e.Integrations[name], for builtins.Use.
func (e *Env) Integration(name string) any { return e.Integrations[name] }

// HTTPClient implements builtins.Env; it returns e.Client.
func (e *Env) HTTPClient() *http.Client { return e.Client }

// KV implements builtins.Env; it returns e.Store, or nil if Store is nil (a
// node without a store).
func (e *Env) KV() builtins.KVStore {
	if e.Store == nil {
		return nil
	}
	return e.Store
}

// Publish implements builtins.Env: it records the message, or returns the
// error given to FailPublish.
func (e *Env) Publish(ctx context.Context, subject string, payload []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.publishErr != nil {
		return e.publishErr
	}
	e.published = append(e.published, Message{Subject: subject, Payload: string(payload)})
	return nil
}

// FailPublish makes every later Publish return err (nil restores success).
func (e *Env) FailPublish(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.publishErr = err
}

// Published returns the messages published so far, in order.
func (e *Env) Published() []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.published)
}

// KVStore is an in-memory builtins.KVStore, safe for concurrent use.
type KVStore struct {
	mu   sync.Mutex
	data map[string][]byte
	err  error
}

var _ builtins.KVStore = (*KVStore)(nil)

// NewKVStore returns an empty store.
func NewKVStore() *KVStore { return &KVStore{data: map[string][]byte{}} }

// Get implements builtins.KVStore.
func (s *KVStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, false, s.err
	}
	v, ok := s.data[key]
	return slices.Clone(v), ok, nil
}

// Put implements builtins.KVStore. It stores value as given: a test can put
// what kv.put never would, such as bytes that are not JSON.
func (s *KVStore) Put(ctx context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.data[key] = slices.Clone(value)
	return nil
}

// Delete implements builtins.KVStore.
func (s *KVStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	delete(s.data, key)
	return nil
}

// Fail makes every later call return err, as a store that is down would
// (nil restores it).
func (s *KVStore) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Keys returns the stored keys, sorted.
func (s *KVStore) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.data))
}
