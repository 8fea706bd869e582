package bus

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// openCluster opens n embedded buses whose servers route to each other.
func openCluster(t testing.TB, ctx context.Context, n int) []*Bus {
	t.Helper()
	return openClusterWith(t, ctx, n, Options{})
}

// openClusterWith is openCluster with base options for every node.
func openClusterWith(t testing.TB, ctx context.Context, n int, base Options) []*Bus {
	t.Helper()
	ports := freePorts(t, n)
	buses := make([]*Bus, n)
	errs := make([]error, n)
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
			opts := base
			opts.Name, opts.DataDir, opts.ClusterListen, opts.Peers = fmt.Sprintf("c%d", i+1), t.TempDir(), fmt.Sprintf("127.0.0.1:%d", ports[i]), peers
			buses[i], errs[i] = Open(ctx, opts)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
	}
	return buses
}

// TestEmbeddedCluster joins three embedded servers with routes: streams get
// three replicas, and an entry appended through one node is read back through
// another, write-once as on one node.
func TestEmbeddedCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	buses := openCluster(t, ctx, 3)
	for _, b := range buses {
		defer b.Close()
	}
	if r := buses[0].Replicas(); r != 3 {
		t.Fatalf("replicas = %d, want 3", r)
	}
	run := fmt.Sprintf("C%d", time.Now().UnixNano())
	if _, err := buses[0].Append(ctx, JournalSubject(run, "result", "1"), run+"/1", nil, []byte(`"x"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := buses[2].Append(ctx, JournalSubject(run, "result", "1"), run+"/1b", nil, []byte(`"y"`)); err == nil {
		t.Fatal("a second node overwrote a journal entry")
	}
	msgs, err := buses[1].Read(ctx, JournalFilter(run))
	if err != nil || len(msgs) != 1 || string(msgs[0].Data) != `"x"` {
		t.Fatalf("read through another node: %v %v", msgs, err)
	}
	if buses[1].ClusterURL() == "" {
		t.Fatal("no cluster URL")
	}
	// Each node's step inbox has one replica, on the node's own server.
	for _, b := range buses {
		s, err := buses[0].js.Stream(ctx, b.stepsStream(b.opts.Name))
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil || info.Config.Replicas != 1 || info.Cluster == nil || info.Cluster.Leader != b.opts.Name {
			t.Fatalf("inbox of %s: %+v %v", b.opts.Name, info, err)
		}
	}
}
