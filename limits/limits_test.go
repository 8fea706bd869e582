package limits

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/meter"
)

// cluster is three nodes' resources over one bus, as three engines on one
// NATS see them; live says which nodes heartbeat.
type cluster struct {
	b     *bus.Bus
	nodes []*meter.Resources
	mu    sync.Mutex
	live  map[string]bool
}

func newCluster(t *testing.T, resources ...string) *cluster {
	t.Helper()
	c := &cluster{b: bustest.Open(t, bus.Options{}), live: map[string]bool{"n1": true, "n2": true, "n3": true}}
	specs, err := meter.ParseResources(resources)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, name := range []string{"n1", "n2", "n3"} {
		shared := New(Options{Bus: c.b, Node: name, IsLive: c.isLive, Context: ctx})
		res, err := meter.NewResources(specs, meter.ResourcesOptions{Shared: shared})
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, res)
	}
	return c
}

func (c *cluster) isLive(node string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live[node]
}

func TestSharedRateLimitHoldsAcrossNodes(t *testing.T) {
	c := newCluster(t, "api=20/s,burst=5,scope=cluster,builtin=test.echo", "local=1/s,burst=1")
	start := time.Now()
	var taken atomic.Int64
	var wg sync.WaitGroup
	for _, res := range c.nodes {
		lim := res.Limiter("api")
		if _, ok := lim.(*sharedLimiter); !ok {
			t.Fatalf("api limiter is %T, want a shared one", lim)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 500*time.Millisecond {
				if ok, wait := lim.Take(1, time.Now()); ok {
					taken.Add(1)
				} else if wait <= 0 || wait > 100*time.Millisecond {
					t.Errorf("wait = %v, want the time to the next token", wait)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	// The three nodes together may take the burst plus what refilled.
	if got, most := taken.Load(), 5+int64(20*elapsed)+1; got > most || got < 5 {
		t.Fatalf("the nodes took %d tokens in %.2fs, want 5..%d", got, elapsed, most)
	}
	// A node-scoped resource stays each node's own.
	for i, res := range c.nodes {
		if _, ok := res.Limiter("local").(*meter.TokenBucket); !ok {
			t.Fatalf("local limiter is %T", res.Limiter("local"))
		}
		if ok, _, _ := res.Take([]meter.Demand{{Resource: "local", Amount: 1}}); !ok {
			t.Fatalf("n%d: its own local bucket was empty", i+1)
		}
	}
	// Tokens a node gives back are free for the others.
	a, b := c.nodes[0].Limiter("api"), c.nodes[1].Limiter("api")
	for a.Free(time.Now()) >= 1 {
		a.Take(1, time.Now())
	}
	a.Put(3, time.Now())
	if ok, _ := b.Take(3, time.Now()); !ok {
		t.Fatal("tokens given back on n1 are not free on n2")
	}
	if ok, wait := b.Take(6, time.Now()); ok || wait >= 0 {
		t.Fatalf("6 tokens from a burst of 5: ok %v wait %v, want never", ok, wait)
	}
}

func TestSharedPoolAcrossNodes(t *testing.T) {
	c := newCluster(t, "db=2,scope=group:pg,builtin=sql.*")
	a, b := c.nodes[0].Limiter("db"), c.nodes[1].Limiter("db")
	now := time.Now()
	if ok, _ := a.Take(2, now); !ok {
		t.Fatal("n1 could not take the pool")
	}
	if ok, wait := b.Take(1, now); ok || wait != 0 {
		t.Fatalf("n2 took from a pool n1 holds: ok %v wait %v", ok, wait)
	}
	if free := b.Free(time.Now().Add(time.Second)); free != 0 {
		t.Fatalf("n2 sees %v free, want 0", free)
	}
	a.Put(1, now)
	if ok, _ := b.Take(1, now); !ok {
		t.Fatal("a unit n1 released is not free on n2")
	}
	if ok, wait := b.Take(3, now); ok || wait >= 0 {
		t.Fatalf("3 units of a pool of 2: ok %v wait %v, want never", ok, wait)
	}

	// Waiting for a unit another node releases.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- c.nodes[2].Wait(ctx, []meter.Demand{{Resource: "db", Amount: 1}})
	}()
	bustest.PollUntil(t, func() bool { return c.nodes[2].Waiting("db") == 1 })
	a.Put(1, time.Now())
	if err := <-done; err != nil {
		t.Fatalf("wait for a unit released on n1: %v", err)
	}
}

func TestSharedPoolDropsHoldingsOfLostNodes(t *testing.T) {
	c := newCluster(t, "db=2,scope=cluster")
	kv := c.b.Bucket(bus.LimitsBucket)
	ctx := context.Background()
	put := func(held map[string]holding) {
		t.Helper()
		data, _ := json.Marshal(limitState{Held: held})
		if _, err := kv.Put(ctx, "cluster.db", data); err != nil {
			t.Fatal(err)
		}
	}
	lim := c.nodes[0].Limiter("db")
	now := time.Now()

	// A node never seen that took units just now may not be heartbeating
	// yet: its units stay held.
	put(map[string]holding{"ghost": {Units: 2, Boot: 1, At: now.UnixNano()}})
	if ok, _ := lim.Take(1, now); ok {
		t.Fatal("took units a node that just started holds")
	}
	// Once it has been silent past the grace, they are free again.
	put(map[string]holding{"ghost": {Units: 2, Boot: 1, At: now.Add(-time.Minute).UnixNano()}})
	if ok, _ := lim.Take(2, now); !ok {
		t.Fatal("units of a lost node were not freed")
	}
	// A node's units from before it restarted are void.
	put(map[string]holding{"n1": {Units: 2, Boot: 12345, At: now.UnixNano()}})
	if ok, _ := lim.Take(2, now); !ok {
		t.Fatal("units held by this node's earlier incarnation were not freed")
	}
	// A live node's units stay held however old.
	lim2 := c.nodes[1].Limiter("db").(*sharedLimiter)
	put(map[string]holding{"n2": {Units: 2, Boot: lim2.boot, At: now.Add(-time.Hour).UnixNano()}})
	if ok, _ := lim.Take(1, now); ok {
		t.Fatal("took units a live node holds")
	}
	// Once it is lost, they are free.
	c.mu.Lock()
	c.live["n2"] = false
	c.mu.Unlock()
	if ok, _ := lim.Take(2, now); !ok {
		t.Fatal("units of a node no longer live were not freed")
	}
}
