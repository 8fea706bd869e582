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

// TestNewestThroughLeaderLoss: a node keeps reading the newest revisions of
// the runs bucket, complete, while the bucket stream's leader (another
// node's server) dies and a new leader is elected.
func TestNewestThroughLeaderLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	buses := openCluster(t, ctx, 3)
	const n = 3000
	kv := buses[0].Bucket(RunsBucket)
	var puts []*PendingPut
	for i := range n {
		put, err := kv.PutAsync(fmt.Sprintf("r.k%d", i), []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		puts = append(puts, put)
	}
	for _, put := range puts {
		if _, err := put.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s, err := buses[0].js.Stream(ctx, kv.streamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %+v %v", info, err)
	}
	var leader, reader *Bus
	for _, b := range buses {
		if b.opts.Name == info.Cluster.Leader {
			leader = b
		} else if reader == nil {
			reader = b
		} else {
			defer b.Close()
		}
	}
	defer reader.Close()
	if leader == nil {
		t.Fatalf("no leader among the buses: %s", info.Cluster.Leader)
	}
	// Read while the leader dies: every read whole, none slow for long.
	var reads int
	var slowest time.Duration
	var killed time.Time
	for start := time.Now(); time.Since(start) < 6*time.Second; reads++ {
		if reads == 10 {
			go leader.Close()
			killed = time.Now()
		}
		t0 := time.Now()
		w, err := reader.Bucket(RunsBucket).Newest(ctx, n)
		if err != nil {
			t.Fatalf("read %d (%s after the kill): %v", reads, time.Since(killed), err)
		}
		if len(w.Entries) != n {
			t.Fatalf("read %d (%s after the kill): %d entries, want %d", reads, time.Since(killed), len(w.Entries), n)
		}
		slowest = max(slowest, time.Since(t0))
	}
	t.Logf("%d reads of %d revisions, slowest %s, while the stream leader %s died", reads, n, slowest, leader.opts.Name)
}
