package bus

import (
	"context"
	"errors"
)

// DataStore is the store behind the kv.* builtins: the data bucket, any
// printable key encoded (EncodeKey), a missing key found false rather than
// an error. It satisfies builtins.KVStore.
type DataStore struct{ kv *KV }

// DataStore returns the store of the kv.* builtins.
func (b *Bus) DataStore() DataStore { return DataStore{b.Bucket(DataBucket)} }

// Get returns the value of key, and whether there is one.
func (d DataStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, _, err := d.kv.Get(ctx, EncodeKey(key))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return v, true, nil
}

// Put stores value under key.
func (d DataStore) Put(ctx context.Context, key string, value []byte) error {
	_, err := d.kv.Put(ctx, EncodeKey(key), value)
	return err
}

// Delete removes key (a no-op if it does not exist).
func (d DataStore) Delete(ctx context.Context, key string) error {
	return d.kv.Delete(ctx, EncodeKey(key))
}
