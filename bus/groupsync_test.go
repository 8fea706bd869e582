package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// Under the always policy an embedded server that is not clustered leaves
// syncing to the bus, and concurrent writers share syncs.
func TestGroupSyncSharesSyncs(t *testing.T) {
	if !syncfsSupported {
		t.Skip("no syncfs(2) here: the server syncs each message")
	}
	b, err := Open(context.Background(), Options{Name: "g", DataDir: t.TempDir(), Sync: SyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.group == nil {
		t.Fatal("no group sync under the always policy")
	}
	if b.ns.JetStreamConfig().SyncAlways {
		t.Fatal("the server syncs each message as well")
	}
	const writers, each = 32, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				run := fmt.Sprintf("w%d", w)
				if _, err := b.Append(context.Background(), JournalSubject(run, "result", fmt.Sprint(i)), run+fmt.Sprint(i), nil, []byte("{}")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.group.mu.Lock()
	rounds := b.group.rounds
	b.group.mu.Unlock()
	// How many appends a sync covers depends on how the writers overlap,
	// which a loaded machine (CI under -race) spreads out: at most half
	// still shows that syncs are shared (one per append would be 640).
	if rounds == 0 || rounds > writers*each/2 {
		t.Fatalf("%d syncs for %d appends from %d writers: want some, and at most half", rounds, writers*each, writers)
	}
	t.Logf("%d syncs for %d appends", rounds, writers*each)
}

// A bus reached by URL asks a Drover embedded server under the always
// policy for its group sync; a server that syncs itself is not asked.
func TestRemoteSync(t *testing.T) {
	if !syncfsSupported {
		t.Skip("no syncfs(2) here: the server syncs each message")
	}
	for _, tt := range []struct {
		server SyncPolicy
		asks   bool
	}{{SyncAlways, true}, {SyncPolicy{}, false}} {
		t.Run(tt.server.String(), func(t *testing.T) {
			srv, err := Open(context.Background(), Options{Name: "srv", DataDir: t.TempDir(), Listen: "127.0.0.1:0", Sync: tt.server})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cli, err := Open(context.Background(), Options{Name: "cli", URL: srv.ClientURL(), Sync: SyncAlways})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			if cli.remoteSync != tt.asks {
				t.Fatalf("remote sync = %v, want %v", cli.remoteSync, tt.asks)
			}
			if _, err := cli.Append(context.Background(), JournalSubject("r", "start", ""), "r/start", nil, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			if tt.asks {
				srv.group.mu.Lock()
				rounds := srv.group.rounds
				srv.group.mu.Unlock()
				if rounds == 0 {
					t.Fatal("the server did not sync for the remote append")
				}
			}
		})
	}
}

// Writes taken Stored one after another and then waited for share one sync;
// waited for each in turn, they pay one each.
func TestStoredWritesShareOneSync(t *testing.T) {
	if !syncfsSupported {
		t.Skip("no syncfs(2) here: the server syncs each message")
	}
	ctx := context.Background()
	b, err := Open(ctx, Options{Name: "g", DataDir: t.TempDir(), Sync: SyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kv := b.Bucket(RunsBucket)
	rounds := func() int {
		b.group.mu.Lock()
		defer b.group.mu.Unlock()
		return b.group.rounds
	}
	puts := func(prefix string) []*PendingPut {
		var out []*PendingPut
		for i := range 3 {
			p, err := kv.PutAsync(fmt.Sprintf("%s.%d", prefix, i), []byte("v"))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	before := rounds()
	app, err := b.AppendAsync(JournalSubject("a", "end", ""), "a/end", nil, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := app.Stored(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waits := []func(context.Context) error{w}
	for _, p := range puts("a") {
		w, err := p.Stored(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	for _, w := range waits {
		if err := w(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := rounds() - before; got != 1 {
		t.Fatalf("an append and three puts, stored then waited for: %d syncs, want 1", got)
	}
	before = rounds()
	for _, p := range puts("b") {
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := rounds() - before; got < 2 {
		t.Fatalf("three puts waited for in turn: %d syncs (the test no longer shows the difference)", got)
	}
}
