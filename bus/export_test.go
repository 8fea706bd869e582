package bus

import (
	"context"
	"time"
)

// OpenCluster is openCluster for the external test package.
var OpenCluster = openCluster

// WithoutGroupSync returns opts whose always policy is left to the embedded
// server (nats-server's SyncAlways: one fsync per message), as before the
// bus grouped syncs: the comparison in BenchmarkAppend.
func WithoutGroupSync(opts Options) Options {
	opts.noGroupSync = true
	return opts
}

// SetValueRefresh sets how old a value may be before it is stored again,
// and returns a function that restores it.
func SetValueRefresh(d time.Duration) (restore func()) {
	old := valueRefresh
	valueRefresh = d
	return func() { valueRefresh = old }
}

// ValueStored returns when the value under name was last stored.
func (b *Bus) ValueStored(ctx context.Context, name string) (time.Time, error) {
	info, err := b.values.GetInfo(ctx, name)
	if err != nil {
		return time.Time{}, err
	}
	return info.ModTime, nil
}
