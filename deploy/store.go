package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
)

// Store keeps script versions by content hash in the scripts bucket. It is
// safe for concurrent use.
type Store struct {
	kv     *bus.KV
	stored sync.Map // hashes known to be stored
}

// NewStore returns the script versions kept on b.
func NewStore(b *bus.Bus) *Store { return &Store{kv: b.Bucket(bus.ScriptsBucket)} }

func sourceKey(hash string) string { return "sha256." + hash }

// Save stores version s under its content hash, once.
func (st *Store) Save(ctx context.Context, s api.Script, hash string) error {
	if _, ok := st.stored.Load(hash); ok {
		return nil
	}
	data, err := api.EncodeJSON(s)
	if err != nil {
		return err
	}
	if _, err := st.kv.Create(ctx, sourceKey(hash), data); err != nil && !errors.Is(err, bus.ErrExists) {
		return fmt.Errorf("deploy: store script %s: %w", s.Name, err)
	}
	st.stored.Store(hash, true)
	return nil
}

// Load returns the script version stored under hash.
func (st *Store) Load(ctx context.Context, hash string) (*api.Script, error) {
	data, _, err := st.kv.Get(ctx, sourceKey(hash))
	if err != nil {
		return nil, fmt.Errorf("deploy: script version %s: %w", hash, err)
	}
	var s api.Script
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("deploy: script version %s is corrupt: %w", hash, err)
	}
	return &s, nil
}
