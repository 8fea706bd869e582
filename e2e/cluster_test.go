package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/engine/client"
)

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startCluster starts n engine processes whose embedded NATS servers route to
// each other, and returns them once each serves its API.
func startCluster(t *testing.T, n int, extra ...string) []*engineProc {
	t.Helper()
	ports := freePorts(t, n)
	procs := make([]*engineProc, n)
	var wg sync.WaitGroup
	for i := range procs {
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		args := append([]string{"--name", fmt.Sprintf("n%d", i+1), "--cluster", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--peers", strings.Join(peers, ",")}, extra...)
		dir := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i] = startEngine(t, dir, args...)
		}()
	}
	wg.Wait()
	return procs
}

// TestClusterNodes: three engines form one cluster and every node sees all
// three, live, within a few heartbeats.
func TestClusterNodes(t *testing.T) {
	procs := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		nodes, err := client.New(procs[2].url).Nodes(ctx)
		if err == nil && len(nodes) == 3 {
			if nodes[0].Name != "n1" || nodes[2].Reading.Cores == 0 || nodes[1].HTTP == "" {
				t.Fatalf("nodes: %+v", nodes)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("never saw 3 nodes: %v %+v", err, nodes)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	waitNodes(t, ctx, procs[0].url, 3)
	out, errOut, code := ctl(t, []string{"DROVER_URL=" + procs[0].url}, "nodes")
	if code != 0 || strings.Count(out, "http://127.0.0.1:") != 3 {
		t.Fatalf("ctl nodes: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Log("\n" + out)
}
