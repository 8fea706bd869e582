package bus

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// The reads of a listing on a server under load, with parts of them stalled
// or lost through the bus's hooks.

// putKeys stores count keys prefix0, prefix1, … (nil values), in groups.
func putKeys(t *testing.T, kv *KV, prefix string, count int) {
	t.Helper()
	ctx := context.Background()
	var puts []*PendingPut
	for i := range count {
		put, err := kv.PutAsync(fmt.Sprint(prefix, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if puts = append(puts, put); len(puts) == 1000 || i == count-1 {
			for _, put := range puts {
				if _, err := put.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			puts = puts[:0]
		}
	}
}

// setTryTimeout sets retry's deadline per try and returns a function that
// restores it.
func setTryTimeout(d time.Duration) (restore func()) {
	old := tryTimeout
	tryTimeout = d
	return func() { tryTimeout = old }
}

// TestNewestSlowerThanATry: a read of many revisions that takes longer than
// a try of one request (tryTimeout), its answers coming all along, is read
// whole once, not abandoned and started again.
func TestNewestSlowerThanATry(t *testing.T) {
	defer setTryTimeout(100 * time.Millisecond)()
	b := openBus(t, false)
	kv := b.Bucket(RunsBucket)
	const n = 40
	putKeys(t, kv, "r.k", n)
	var answers atomic.Int64
	// A slow reader: 40 answers take 400 ms, four tries' worth.
	b.hooks = &hooks{directReply: func(uint64) { answers.Add(1); time.Sleep(10 * time.Millisecond) }}
	w, err := kv.Newest(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	if !w.All || len(w.Entries) != n {
		t.Fatalf("All %v, %d entries, want all %d", w.All, len(w.Entries), n)
	}
	if got := answers.Load(); got != n {
		t.Errorf("%d answers taken for %d revisions: the read started again", got, n)
	}
}
