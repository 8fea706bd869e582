package bus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The tests below share the external NATS with other test runs, so they use
// keys of their own (uniqueRun) and assume nothing about other keys.

func TestKVPutAsync(t *testing.T) {
	for _, external := range []bool{false, true} {
		t.Run(fmt.Sprintf("external=%v", external), func(t *testing.T) {
			b := openBus(t, external)
			ctx := context.Background()
			kv := b.Bucket(RunsBucket)
			p := "t." + uniqueRun(t) + "."
			var puts []*PendingPut
			for i := range 10 {
				put, err := kv.PutAsync(fmt.Sprintf("%s%d", p, i), []byte{byte('a' + i)})
				if err != nil {
					t.Fatal(err)
				}
				puts = append(puts, put)
			}
			var last uint64
			for i, put := range puts {
				rev, err := put.Wait(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if rev <= last {
					t.Errorf("put %d: revision %d after %d: not stored in order", i, rev, last)
				}
				last = rev
				if v, got, err := kv.Get(ctx, fmt.Sprintf("%s%d", p, i)); err != nil || string(v) != string(rune('a'+i)) || got != rev {
					t.Errorf("get %d = %q rev %d, %v; want %q rev %d", i, v, got, err, string(rune('a'+i)), rev)
				}
			}
			for _, key := range []string{"", "a..b", ".a", "a.", "a b", "a.*", "a.>"} {
				if _, err := kv.PutAsync(key, nil); err == nil {
					t.Errorf("PutAsync(%q) accepted an invalid key", key)
				}
			}
		})
	}
}

func TestKVRemoveAndStoredKeys(t *testing.T) {
	for _, external := range []bool{false, true} {
		t.Run(fmt.Sprintf("external=%v", external), func(t *testing.T) {
			b := openBus(t, external)
			ctx := context.Background()
			kv := b.Bucket(RunsBucket)
			p := "t." + uniqueRun(t) + "."
			for _, k := range []string{"a.1", "a.2", "a.3", "b.1", "gone", "deleted"} {
				if _, err := kv.Put(ctx, p+k, []byte("v")); err != nil {
					t.Fatal(err)
				}
			}
			if err := kv.Remove(ctx, p+"gone"); err != nil {
				t.Fatal(err)
			}
			if err := kv.Remove(ctx, p+"never"); err != nil {
				t.Errorf("remove a missing key: %v", err)
			}
			if err := kv.Delete(ctx, p+"deleted"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := kv.Get(ctx, p+"gone"); !errors.Is(err, ErrNotFound) {
				t.Errorf("get removed key: err = %v, want ErrNotFound", err)
			}
			tests := []struct {
				filter string
				want   []string
			}{
				{p + "a.*", []string{"a.1", "a.2", "a.3"}},
				{p + "*.1", []string{"a.1", "b.1"}},
				{p + ">", []string{"a.1", "a.2", "a.3", "b.1", "deleted"}}, // Delete leaves a marker, Remove none
				{p + "c.*", nil},
			}
			for _, tt := range tests {
				keys, err := kv.StoredKeys(ctx, tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(keys)
				var want []string
				for _, k := range tt.want {
					want = append(want, p+k)
				}
				if !slices.Equal(keys, want) {
					t.Errorf("StoredKeys(%s) = %v, want %v", tt.filter, keys, want)
				}
			}
		})
	}
}

func TestKVStoredKeysPaged(t *testing.T) {
	b := openBus(t, false)
	ctx := context.Background()
	kv := b.Bucket(RunsBucket)
	// More keys than one stream info response holds (100,000).
	const n = 100_500
	var puts []*PendingPut
	for i := range n {
		put, err := kv.PutAsync(fmt.Sprintf("p.%d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if puts = append(puts, put); len(puts) == 1000 || i == n-1 {
			for _, put := range puts {
				if _, err := put.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			puts = puts[:0]
		}
	}
	keys, err := kv.StoredKeys(ctx, "p.*")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != n {
		t.Errorf("StoredKeys: %d keys, want %d", len(keys), n)
	}
}

func TestKVNewest(t *testing.T) {
	for _, external := range []bool{false, true} {
		for _, keysOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("external=%v/keys=%v", external, keysOnly), func(t *testing.T) {
				testNewest(t, openBus(t, external), keysOnly)
			})
		}
	}
}

// testNewest reads the newest part of the bucket with Newest, or NewestKeys
// with a filter matching the test's keys.
func testNewest(t *testing.T, b *Bus, keysOnly bool) {
	ctx := context.Background()
	kv := b.Bucket(RunsBucket)
	p := "t." + uniqueRun(t) + "."
	put := func(key, value string) {
		t.Helper()
		if _, err := kv.Put(ctx, p+key, []byte(value)); err != nil {
			t.Fatal(err)
		}
	}
	put("before", "x")
	put("k0", "old") // rewritten below: read once, at its newest revision
	for i := 1; i <= 20; i++ {
		put(fmt.Sprintf("k%d", i), fmt.Sprint(i))
		if _, err := kv.Put(ctx, "t.other", nil); err != nil { // not matching the filter
			t.Fatal(err)
		}
	}
	put("k0", "new")
	put("empty", "")
	put("deleted", "x")
	if err := kv.Delete(ctx, p+"deleted"); err != nil {
		t.Fatal(err)
	}
	put("removed", "x")
	if err := kv.Remove(ctx, p+"removed"); err != nil {
		t.Fatal(err)
	}

	// Read a few revisions, then widen until the window reaches back to the
	// first key: the window holds every key written since.
	newest := func(n uint64) (*Window, error) { return kv.Newest(ctx, n) }
	if keysOnly {
		newest = func(n uint64) (*Window, error) { return kv.NewestKeys(ctx, p+">", n) }
	}
	w, err := newest(3)
	if err != nil {
		t.Fatal(err)
	}
	if w.All {
		t.Fatalf("a window of 3 revisions is the whole bucket")
	}
	for !w.All && latestRevision(w, p+"before") == 0 {
		if err := w.Widen(ctx, 4); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	var order []string
	for _, e := range w.Entries {
		if !w.All && e.Time.Before(w.Since) {
			t.Errorf("entry %s written at %v, before the window began (%v)", e.Key, e.Time, w.Since)
		}
		rest, ok := strings.CutPrefix(e.Key, p)
		if !ok {
			if keysOnly {
				t.Errorf("key %s does not match the filter", e.Key)
			}
			continue
		}
		if _, dup := got[rest]; dup {
			t.Errorf("key %s read twice", rest)
		}
		got[rest] = string(e.Value)
		order = append(order, rest)
	}
	want := map[string]string{"before": "x", "k0": "new", "empty": ""}
	for i := 1; i <= 20; i++ {
		want[fmt.Sprintf("k%d", i)] = fmt.Sprint(i)
	}
	if keysOnly {
		for k := range want {
			want[k] = ""
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("entries = %v, want %v", got, want)
	}
	// Oldest first: k0 was rewritten last but for empty.
	if n := len(order); n < 2 || order[0] != "before" || order[n-2] != "k0" || order[n-1] != "empty" {
		t.Errorf("order = %v", order)
	}
	if w.Total == 0 {
		t.Errorf("Total = 0")
	}

	// Keys written after the window was read show when it widens.
	put("later", "y")
	if err := w.Widen(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if latestRevision(w, p+"later") == 0 {
		t.Errorf("widened window misses a key written since")
	}
}

func TestKVNewestAll(t *testing.T) {
	b := openBus(t, false)
	ctx := context.Background()
	kv := b.Bucket(DataBucket)
	w, err := kv.Newest(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !w.All || len(w.Entries) != 0 || !w.Since.IsZero() {
		t.Fatalf("empty bucket: %+v", w)
	}
	for i := range 5 {
		if _, err := kv.Put(ctx, fmt.Sprintf("k%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if w, err = kv.Newest(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if !w.All || len(w.Entries) != 5 || w.Total != 5 {
		t.Fatalf("5 of 5: All %v, %d entries, Total %d", w.All, len(w.Entries), w.Total)
	}
	if w, err = kv.Newest(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if w.All || len(w.Entries) != 4 || w.Entries[0].Key != "k1" {
		t.Fatalf("4 of 5: All %v, entries %v", w.All, w.Entries)
	}
}

func latestRevision(w *Window, key string) uint64 {
	for _, e := range w.Entries {
		if e.Key == key {
			return e.Revision
		}
	}
	return 0
}

// TestLeaderGets reads revisions through the stream leader's message-get
// API (the fallback when no replica answers direct gets): values, delete
// markers, and sequences that hold nothing any more.
func TestLeaderGets(t *testing.T) {
	for _, external := range []bool{false, true} {
		t.Run(fmt.Sprintf("external=%v", external), func(t *testing.T) {
			b := openBus(t, external)
			ctx := context.Background()
			kv := b.Bucket(DataBucket)
			run := uniqueRun(t)
			a, err := kv.Put(ctx, run+".a", []byte("A"))
			if err != nil {
				t.Fatal(err)
			}
			b1, _ := kv.Put(ctx, run+".b", []byte("B"))
			gone, _ := kv.Put(ctx, run+".gone", []byte("G"))
			if err := kv.Delete(ctx, run+".b"); err != nil { // a marker replaces b1 (history 1)
				t.Fatal(err)
			}
			st, err := kv.getStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			si, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			marker := si.State.LastSeq
			if err := kv.Remove(ctx, run+".gone"); err != nil {
				t.Fatal(err)
			}
			msgs, err := kv.leaderGets(ctx, map[uint64]bool{a: true, b1: true, gone: true, marker: true}, kv.subject(""))
			if err != nil {
				t.Fatal(err)
			}
			sort.Slice(msgs, func(i, j int) bool { return msgs[i].Revision < msgs[j].Revision })
			if len(msgs) != 2 || msgs[0].Revision != a || string(msgs[0].Value) != "A" || msgs[0].Key != run+".a" || msgs[0].deleted ||
				msgs[1].Revision != marker || msgs[1].Key != run+".b" || !msgs[1].deleted || msgs[1].Time.IsZero() {
				t.Fatalf("leader gets: %+v", msgs)
			}
		})
	}
}
