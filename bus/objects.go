package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PutPinned stores data under name in the pinned-runs object store (no expiry).
func (b *Bus) PutPinned(ctx context.Context, name string, data []byte) error {
	return b.putObject(ctx, b.pinned, "pin", name, data)
}

// GetPinned returns what PutPinned stored under name, or ErrNotFound.
func (b *Bus) GetPinned(ctx context.Context, name string) ([]byte, error) {
	return getObject(ctx, b.pinned, "pinned", name)
}

// valueRefresh is how old a stored value may be before PutValue or
// KeepValue stores it again: a value outlives the newest journal entry
// naming it, since values are kept valueRefresh longer than journals.
var valueRefresh = time.Hour

// PutValue stores data under name (its content hash) in the values object
// store, which keeps it as long as the journal keeps entries written now.
// A value stored less than an hour ago is not stored again.
func (b *Bus) PutValue(ctx context.Context, name string, data []byte) error {
	if info, err := b.values.GetInfo(ctx, name); err == nil && !info.Deleted && time.Since(info.ModTime) < valueRefresh {
		return nil
	}
	return b.putObject(ctx, b.values, "store value", name, data)
}

// KeepValue makes the value stored under name outlive journal entries
// written from now on (a run's sealed parts, written when it ends, may name
// a value stored days before): it stores it again if it was stored more
// than an hour ago. A value that is gone is ErrNotFound.
func (b *Bus) KeepValue(ctx context.Context, name string) error {
	info, err := b.values.GetInfo(ctx, name)
	if err == nil && !info.Deleted && time.Since(info.ModTime) < valueRefresh {
		return nil
	}
	data, err := b.GetValue(ctx, name)
	if err != nil {
		return err
	}
	return b.putObject(ctx, b.values, "keep value", name, data)
}

// GetValue returns what PutValue stored under name, or ErrNotFound (it
// expired with the journals).
func (b *Bus) GetValue(ctx context.Context, name string) ([]byte, error) {
	return getObject(ctx, b.values, "value", name)
}

// putObject stores data under name in store, durably (see groupsync.go).
func (b *Bus) putObject(ctx context.Context, store jetstream.ObjectStore, what, name string, data []byte) error {
	if err := retry(ctx, func(ctx context.Context) error { _, err := store.PutBytes(ctx, name, data); return err }); err != nil {
		return fmt.Errorf("bus: %s %s: %w", what, name, err)
	}
	return b.synced(ctx)
}

// getObject reads name from store, or returns ErrNotFound.
func getObject(ctx context.Context, store jetstream.ObjectStore, what, name string) ([]byte, error) {
	var data []byte
	err := retry(ctx, func(ctx context.Context) (err error) {
		data, err = store.GetBytes(ctx, name)
		return err
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, fmt.Errorf("%w: %s %s", ErrNotFound, what, name)
		}
		return nil, fmt.Errorf("bus: read %s %s: %w", what, name, err)
	}
	return data, nil
}
