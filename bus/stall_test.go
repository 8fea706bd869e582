package bus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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

// within runs f and fails t if it has not returned within d: f stalled on
// something it should not wait for.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s has not returned after %v", what, d)
	}
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

// TestNewestKeysLostMessages: messages of a consumer that the reader lost
// (one amid a batch, seen by the gap after it; the last of a batch, seen by
// the silence after it) are read from a new consumer that starts after the
// last message read: every key is read once.
func TestNewestKeysLostMessages(t *testing.T) {
	for _, lose := range []int{7, 50} {
		t.Run(fmt.Sprintf("message %d", lose), func(t *testing.T) {
			b := openBus(t, false)
			kv := b.Bucket(RunsBucket)
			const n = 50
			for i := range n {
				putKeys(t, kv, fmt.Sprintf("a.x.%d.", i), 1) // a.x.<i>.0
				putKeys(t, kv, fmt.Sprintf("r.%d.", i), 1)   // not matching
			}
			var data atomic.Int64
			var lost atomic.Bool
			b.hooks = &hooks{lose: func(m *nats.Msg) bool {
				if m.Header.Get("Status") != "" {
					return false
				}
				return data.Add(1) == int64(lose) && lost.CompareAndSwap(false, true)
			}}
			w, err := kv.NewestKeys(context.Background(), "a.x.>", 4*n)
			if err != nil {
				t.Fatal(err)
			}
			if !lost.Load() {
				t.Fatal("no message lost")
			}
			seen := map[string]bool{}
			for _, e := range w.Entries {
				if !strings.HasPrefix(e.Key, "a.x.") || seen[e.Key] {
					t.Errorf("key %s: not matching, or read twice", e.Key)
				}
				seen[e.Key] = true
			}
			if len(seen) != n {
				t.Errorf("%d keys read, want %d", len(seen), n)
			}
		})
	}
}

// TestNewestKeysDeletesConsumersLater: NewestKeys answers while the deletion
// of its consumer is stalled, and the consumer is deleted after: none is left.
func TestNewestKeysDeletesConsumersLater(t *testing.T) {
	b := openBus(t, false)
	ctx := context.Background()
	kv := b.Bucket(RunsBucket)
	putKeys(t, kv, "a.x.", 20)
	release := make(chan struct{})
	var deleting atomic.Int64
	b.hooks = &hooks{deleteConsumer: func(string) { deleting.Add(1); <-release }}
	var keys int
	within(t, 10*time.Second, "NewestKeys with its consumer's deletion stalled", func() {
		w, err := kv.NewestKeys(ctx, "a.x.*", 100)
		if err != nil {
			t.Error(err)
			return
		}
		keys = len(w.Entries)
	})
	close(release)
	if keys != 20 {
		t.Fatalf("%d keys, want 20", keys)
	}
	s, err := kv.getStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Consumers == 0 && deleting.Load() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d consumers left on the bucket's stream (%d deletions)", info.State.Consumers, deleting.Load())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// TestWindowLostAnswer: a request of a window read whose answer is lost (the
// time of its first revision, here) is sent again after its own try's
// deadline, not left to wait for the caller's, which has none.
func TestWindowLostAnswer(t *testing.T) {
	defer setTryTimeout(100 * time.Millisecond)()
	b := openBus(t, false)
	kv := b.Bucket(RunsBucket)
	putKeys(t, kv, "a.x.", 20)
	var tries atomic.Int64
	b.hooks = &hooks{request: func(ctx context.Context, subject string) error {
		if tries.Add(1) == 1 {
			<-ctx.Done() // the answer never comes
			return ctx.Err()
		}
		return nil
	}}
	var w *Window
	within(t, 10*time.Second, "NewestKeys with a lost answer", func() {
		var err error
		if w, err = kv.NewestKeys(context.Background(), "a.x.*", 5); err != nil {
			t.Error(err)
		}
	})
	if w == nil {
		return
	}
	if w.All || w.Since.IsZero() || tries.Load() != 2 {
		t.Errorf("All %v, Since %v after %d tries; want a window short of the bucket, its start's time asked twice", w.All, w.Since, tries.Load())
	}
}

// TestPartitionsDoNotWaitForTheListing: once the bus knows the partitions, a
// stalled listing of the streams (a busy server answers those last) does not
// hold up Partitions: it answers with what it knows, and the listing goes on
// in the background.
func TestPartitionsDoNotWaitForTheListing(t *testing.T) {
	b := openBus(t, false)
	listing := make(chan struct{}, 1)
	release := make(chan struct{})
	b.hooks = &hooks{streamNames: func() { listing <- struct{}{}; <-release }}
	b.parts.mu.Lock()
	b.parts.checked = time.Time{} // stale
	b.parts.mu.Unlock()
	within(t, 10*time.Second, "Partitions with the listing of streams stalled", func() {
		if n, err := b.Partitions(context.Background()); n != 1 || err != nil {
			t.Errorf("Partitions = %d, %v; want 1", n, err)
		}
	})
	<-listing // it goes on in the background
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.parts.mu.Lock()
		done := !b.parts.looking && !b.parts.checked.IsZero()
		b.parts.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listing in the background has not ended")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}
