package journal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/droverhq/drover/bus"
)

// DefaultLargeValue is the size, in bytes, above which a journal entry (a
// step's arguments or result, a run's input or result) is stored once in
// the values object store under its content hash, and the journal keeps a
// reference: the journal stream's messages stay small whatever scripts
// pass around, and a value repeated across runs is stored once.
const DefaultLargeValue = 64 << 10

// refPrefix starts a reference's JSON form, as the journal stores it in
// place of a large entry: {"$value":"sha256-<hex>","size":<bytes>}. No entry
// has a "$value" field.
const refPrefix = `{"$value":"`

// valueRef is the stored form of a large entry.
type valueRef struct {
	Name string `json:"$value"`
	Size int    `json:"size"`
}

// valueName is the object name of data: its SHA-256.
func valueName(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256-" + hex.EncodeToString(sum[:])
}

// PutValue stores data in the values object store and returns its name, for
// Value. Large step arguments travel to the executing node this way.
func (s *Store) PutValue(ctx context.Context, data []byte) (string, error) {
	name := valueName(data)
	return name, s.b.PutValue(ctx, name, data)
}

// Value returns the value PutValue stored under name, checked against its
// hash.
func (s *Store) Value(ctx context.Context, name string) ([]byte, error) {
	data, err := s.b.GetValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("journal: large value %s: %w", name, err)
	}
	if valueName(data) != name {
		return nil, fmt.Errorf("journal: large value %s is corrupt: its content hashes to %s", name, valueName(data))
	}
	return data, nil
}

// IsLarge reports whether data is over the size stored as a value.
func (s *Store) IsLarge(data []byte) bool { return len(data) > s.large }

// spill returns what the journal stores for an entry encoded as data: data
// itself, or, when it is large, a reference to it in the values object store.
func (s *Store) spill(ctx context.Context, data []byte) ([]byte, error) {
	if !s.IsLarge(data) {
		return data, nil
	}
	name, err := s.PutValue(ctx, data)
	if err != nil {
		return nil, err
	}
	ref := append([]byte(refPrefix), name...)
	ref = append(ref, `","size":`...)
	return append(strconv.AppendInt(ref, int64(len(data)), 10), '}'), nil
}

// resolve returns the entry stored as data: data itself, or the large value
// it refers to.
func (s *Store) resolve(ctx context.Context, data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, []byte(refPrefix)) {
		return data, nil
	}
	var ref valueRef
	if err := json.Unmarshal(data, &ref); err != nil {
		return nil, fmt.Errorf("journal: bad large-value reference %s: %w", data, err)
	}
	return s.Value(ctx, ref.Name)
}

// resolveAll resolves the large values of records in place.
func (s *Store) resolveAll(ctx context.Context, recs []Record) error {
	for i := range recs {
		data, err := s.resolve(ctx, recs[i].Data)
		if err != nil {
			return fmt.Errorf("%w (%s entry %s)", err, recs[i].Kind, recs[i].Key)
		}
		recs[i].Data = data
	}
	return nil
}

// keepValues makes the large values that entries name outlive the sealed
// parts about to hold them (bus.KeepValue). A value already gone is left
// as it is: the entry was unreadable before sealing too.
func (s *Store) keepValues(ctx context.Context, entries []Record) error {
	for _, e := range entries {
		if !bytes.HasPrefix(e.Data, []byte(refPrefix)) {
			continue
		}
		var ref valueRef
		if err := json.Unmarshal(e.Data, &ref); err != nil {
			return fmt.Errorf("bad large-value reference in %s entry %s: %w", e.Kind, e.Key, err)
		}
		if err := s.b.KeepValue(ctx, ref.Name); err != nil && !errors.Is(err, bus.ErrNotFound) {
			return err
		}
	}
	return nil
}
