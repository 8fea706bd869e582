package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestClusterSurvivesNodeLoss: with one of three servers gone, the other two
// keep reading and writing journals and buckets (after any leader election).
func TestClusterSurvivesNodeLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ports := freePorts(t, 3)
	buses := make([]*Bus, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range buses {
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buses[i], errs[i] = Open(ctx, Options{Name: fmt.Sprintf("c%d", i+1), DataDir: t.TempDir(),
				ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Peers: peers})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
	}
	defer buses[0].Close()
	defer buses[1].Close()
	kv := buses[0].Bucket(RunsBucket)
	for i := 0; i < 50; i++ {
		if _, err := kv.Put(ctx, fmt.Sprintf("r.k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	buses[2].Close() // the third server goes away
	start := time.Now()
	for i := 50; i < 60; i++ {
		if _, err := kv.Put(ctx, fmt.Sprintf("r.k%d", i), []byte("v")); err != nil {
			t.Fatalf("put after loss: %v", err)
		}
	}
	t.Logf("puts resumed %s after the loss", time.Since(start))
	w, err := buses[1].Bucket(RunsBucket).Newest(ctx, 100)
	if err != nil {
		t.Fatalf("newest after loss: %v", err)
	}
	_ = w
	t.Logf("newest read %s after the loss", time.Since(start))
}
