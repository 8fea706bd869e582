package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// KV is one key/value bucket. Keys are dot-separated tokens of
// [-/_=.a-zA-Z0-9]; callers encode anything else (see EncodeKey).
type KV struct {
	kv jetstream.KeyValue
}

// Bucket returns one of Drover's buckets (RunsBucket, ScriptsBucket, DataBucket).
func (b *Bus) Bucket(name string) *KV {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buckets[name]
}

// Get returns the value of key and its revision, or ErrNotFound.
func (k *KV) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, 0, fmt.Errorf("%w: key %s", ErrNotFound, key)
		}
		return nil, 0, fmt.Errorf("bus: get %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Put stores value under key and returns the new revision.
func (k *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.kv.Put(ctx, key, value)
	if err != nil {
		return 0, fmt.Errorf("bus: put %s: %w", key, err)
	}
	return rev, nil
}

// Create stores value under key only if key does not exist; otherwise ErrExists.
func (k *KV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.kv.Create(ctx, key, value)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("%w: key %s", ErrExists, key)
		}
		return 0, fmt.Errorf("bus: create %s: %w", key, err)
	}
	return rev, nil
}

// Delete removes key (a no-op if it does not exist).
func (k *KV) Delete(ctx context.Context, key string) error {
	if err := k.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("bus: delete %s: %w", key, err)
	}
	return nil
}

// Entry is one key and value from a bucket.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
}

// Values returns the current value of every key matching filter (NATS subject
// wildcards: "r.>", "a.customer.acme.*"), in one pass over the bucket's
// subject index, without a round trip per key.
func (k *KV) Values(ctx context.Context, filter string) ([]Entry, error) {
	w, err := k.kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("bus: list %s: %w", filter, err)
	}
	defer w.Stop()
	var out []Entry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok || e == nil { // nil marks the end of the initial values
				return out, nil
			}
			out = append(out, Entry{Key: e.Key(), Value: e.Value(), Revision: e.Revision()})
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Keys returns every key matching filter.
func (k *KV) Keys(ctx context.Context, filter string) ([]string, error) {
	l, err := k.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("bus: keys %s: %w", filter, err)
	}
	defer l.Stop()
	var out []string
	for key := range l.Keys() {
		out = append(out, key)
	}
	return out, nil
}

// EncodeKey makes s safe as one token of a KV key: letters, digits, '-' and '_'
// stay, every other byte becomes '=' and two hex digits.
func EncodeKey(s string) string {
	const hex = "0123456789ABCDEF"
	safe := true
	for i := 0; i < len(s); i++ {
		if !keyByteOK(s[i]) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	out := make([]byte, 0, len(s)*3+1)
	if s == "" {
		return "="
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keyByteOK(c) {
			out = append(out, c)
		} else {
			out = append(out, '=', hex[c>>4], hex[c&15])
		}
	}
	return string(out)
}

func keyByteOK(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// Watch delivers the current value of key (if any) and every later update until
// ctx ends; a deleted key is delivered with a nil Value.
func (k *KV) Watch(ctx context.Context, key string) (<-chan Entry, error) {
	w, err := k.kv.Watch(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("bus: watch %s: %w", key, err)
	}
	out := make(chan Entry, 4)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				ent := Entry{Key: e.Key(), Revision: e.Revision()}
				if e.Operation() == jetstream.KeyValuePut {
					ent.Value = e.Value()
				}
				select {
				case out <- ent:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
