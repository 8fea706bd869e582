package bus

import (
	"context"
	"fmt"
	"sync"
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

// TestNewestCatchUpBounded: keys written while a window is read, faster than
// it is read, do not make Widen's catching up read them all: each round reads
// at most catchUpMin revisions (or the window's own count), and the next
// Widen goes on where the last stopped.
func TestNewestCatchUpBounded(t *testing.T) {
	b := openBus(t, false)
	ctx := context.Background()
	kv := b.Bucket(RunsBucket)
	const old = 10
	written := 3*catchUpMin + 100
	putKeys(t, kv, "r.old", old)
	var answers atomic.Int64
	var once sync.Once
	b.hooks = &hooks{directReply: func(uint64) {
		answers.Add(1)
		once.Do(func() { putKeys(t, kv, "r.new", written) }) // writers outpace the read
	}}
	w, err := kv.Newest(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if got, most := answers.Load(), int64(old+3*catchUpMin); got > most {
		t.Errorf("%d revisions read, want at most %d", got, most)
	}
	if len(w.Entries) != old+3*catchUpMin {
		t.Errorf("%d entries, want %d: the window read so far", len(w.Entries), old+3*catchUpMin)
	}
	b.hooks = nil
	if err := w.Widen(ctx, 0); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range w.Entries {
		if seen[e.Key] {
			t.Errorf("key %s read twice", e.Key)
		}
		seen[e.Key] = true
	}
	if len(seen) != old+written {
		t.Errorf("after widening: %d keys, want %d", len(seen), old+written)
	}
}
