package bus

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestClusterSurvivesNodeLoss: with one of three servers gone, the other two
// keep reading and writing journals and buckets (after any leader election).
func TestClusterSurvivesNodeLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	buses := openCluster(t, ctx, 3)
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
