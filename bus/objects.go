package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// PutPinned stores data under name in the pinned-runs object store (no expiry).
func (b *Bus) PutPinned(ctx context.Context, name string, data []byte) error {
	if err := retry(ctx, func(ctx context.Context) error { _, err := b.pinned.PutBytes(ctx, name, data); return err }); err != nil {
		return fmt.Errorf("bus: pin %s: %w", name, err)
	}
	return b.synced(ctx)
}

// GetPinned returns what PutPinned stored under name, or ErrNotFound.
func (b *Bus) GetPinned(ctx context.Context, name string) ([]byte, error) {
	var data []byte
	err := retry(ctx, func(ctx context.Context) (err error) {
		data, err = b.pinned.GetBytes(ctx, name)
		return err
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, fmt.Errorf("%w: pinned %s", ErrNotFound, name)
		}
		return nil, fmt.Errorf("bus: read pinned %s: %w", name, err)
	}
	return data, nil
}
