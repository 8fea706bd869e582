package engine

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/droverhq/drover/placement"
)

// startCluster3 starts three nodes in this process, each with its own
// embedded NATS server, routed to the others over loopback: streams and
// buckets get three replicas. Node i gets opts(i).
func startCluster3(tb testing.TB, opts func(i int) Options) []*Node {
	tb.Helper()
	var ports []int
	for i := 0; i < 3; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	nodes := make([]*Node, 3)
	var wg sync.WaitGroup
	for i := range nodes {
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		o := opts(i)
		o.Name = fmt.Sprintf("n%d", i+1)
		o.ClusterListen = fmt.Sprintf("127.0.0.1:%d", ports[i])
		o.Peers = peers
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i] = newTestNode(tb, o)
		}()
	}
	// newTestNode's Fatal in a goroutine would not stop the test: check.
	wg.Wait()
	for i, n := range nodes {
		if n == nil {
			tb.Fatalf("node %d did not start", i+1)
		}
	}
	return nodes
}

// BenchmarkCluster3Step measures one no-op step in a live 3-node cluster on
// loopback, journals replicated three times: n1 coordinates, and the step is
// either co-located on n1 or dispatched to n2 (through n2's step inbox on its
// own server, result journaled by n2, n1 notified). Like BenchmarkStep, "seq"
// reports p50/p99 per step and "64runs" steps/s.
func BenchmarkCluster3Step(b *testing.B) {
	productionTelemetry()
	lat := &latencies{}
	for _, dispatch := range []bool{false, true} {
		mode := map[bool]string{false: "colocated", true: "dispatched"}[dispatch]
		nodes := startCluster3(b, func(i int) Options {
			o := Options{Registry: benchRegistry(lat, nil), NoRecovery: true}
			if dispatch {
				o.Placement = placement.Fixed{Node: "n2"}
			}
			return o
		})
		if r := nodes[0].bus.Replicas(); r != 3 {
			b.Fatalf("replicas = %d, want 3", r)
		}
		b.Run(mode+"/seq", func(b *testing.B) {
			*lat = latencies{}
			runN(b, nodes[0], 1, b.N, 1, nil)
			lat.report(b)
		})
		b.Run(mode+"/64runs", func(b *testing.B) {
			*lat = latencies{}
			elapsed := runN(b, nodes[0], 64, b.N, 1, nil)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "steps/s")
			lat.report(b)
		})
		grace, cancel := context.WithTimeout(context.Background(), time.Second)
		for _, n := range nodes {
			n.Close(grace)
		}
		cancel()
	}
}
