package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
)

// TestFanInModel checks the model's arithmetic on small clusters with round
// costs.
func TestFanInModel(t *testing.T) {
	c := FanInCosts{HeartbeatBytes: 1000, SummaryBytes: 300, Hear: 20 * time.Microsecond, Transport: 10 * time.Microsecond,
		TransportSummary: 12 * time.Microsecond, Collect: 5 * time.Microsecond, Summarise: 30 * time.Microsecond, HearSummary: 15 * time.Microsecond}
	hb := float64(framed("drover.nodes.node-0001", 1000)) // 1000 bytes and 37 of framing
	sum := float64(framed(summarySubject, 300))
	if hb != 1037 || sum != 338 {
		t.Fatalf("framing: heartbeat %v, summary %v bytes", hb, sum)
	}
	allHear := FanInLoad{Deliveries: 9, Routed: 6, PerNode: 3, BytesPerNode: 3 * hb, Message: 30 * time.Microsecond,
		Handling: 60e-6, CPU: 90e-6, Busiest: 90e-6, Egress: 2 * hb, Age: 500 * time.Millisecond}
	tests := []struct {
		name  string
		d     FanInDesign
		nodes int
		want  FanInLoad
	}{
		{"3 nodes hear each other", FanInDesign{Interval: time.Second}, 3, allHear},
		{"twice as often, twice the load", FanInDesign{Interval: 500 * time.Millisecond}, 3,
			FanInLoad{Deliveries: 18, Routed: 12, PerNode: 6, BytesPerNode: 6 * hb, Message: 30 * time.Microsecond,
				Handling: 120e-6, CPU: 180e-6, Busiest: 180e-6, Egress: 4 * hb, Age: 250 * time.Millisecond}},
		{"no more nodes than aggregators: all hear all", FanInDesign{Interval: time.Second, Aggregators: 3}, 3, allHear},
		// 4 heartbeats reach the aggregator (3 over routes), 3 summaries
		// leave it; the aggregator decodes 4 heartbeats, encodes one
		// summary and sends 3: 4×(5+10)+30+3×12 = 126µs.
		{"4 nodes, 1 aggregator", FanInDesign{Interval: time.Second, Aggregators: 1}, 4,
			FanInLoad{Deliveries: 7, Routed: 6, PerNode: 1, BytesPerNode: sum, Message: 27 * time.Microsecond,
				Handling: 15e-6, CPU: 27e-6, Busiest: 126e-6, Egress: 3 * sum, Age: time.Second}},
		{"10 nodes, 2 aggregators, 2s", FanInDesign{Interval: 2 * time.Second, Aggregators: 2}, 10,
			FanInLoad{Deliveries: 14, Routed: 13, PerNode: 0.5, BytesPerNode: sum / 2, Message: 27 * time.Microsecond,
				Handling: 7.5e-6, CPU: 13.5e-6, Busiest: 114e-6, Egress: 2 * sum, Age: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Nodes = tt.nodes
			got := Model(tt.d, c)
			tt.want.Design, tt.want.Costs = tt.d, c
			near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
			if !near(got.Deliveries, tt.want.Deliveries) || !near(got.Routed, tt.want.Routed) || !near(got.PerNode, tt.want.PerNode) ||
				!near(got.BytesPerNode, tt.want.BytesPerNode) || got.Message != tt.want.Message || !near(got.Handling, tt.want.Handling) ||
				!near(got.CPU, tt.want.CPU) || !near(got.Busiest, tt.want.Busiest) || !near(got.Egress, tt.want.Egress) || got.Age != tt.want.Age {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	// A view of more than 64 nodes copies its snapshot every 100 ms: its
	// readings are 50 ms older on average.
	if age := Model(FanInDesigns[0], FanInCosts{Nodes: 100, Hear: c.Hear}).Age; age != 550*time.Millisecond {
		t.Errorf("reading age at 100 nodes: %s, want 550ms", age)
	}
	// N² with all hearing all: ten times the nodes, a hundred times the
	// deliveries, ten times each node's share.
	c.Nodes = 10
	small, big := Model(FanInDesigns[0], c), Model(FanInDesigns[0], FanInCosts{Nodes: 100, HeartbeatBytes: c.HeartbeatBytes, Hear: c.Hear, Transport: c.Transport})
	if big.Deliveries != 100*small.Deliveries || !near10(big.CPU, 10*small.CPU) {
		t.Errorf("10 → 100 nodes: deliveries %v → %v, CPU %v → %v", small.Deliveries, big.Deliveries, small.CPU, big.CPU)
	}
	var b bytes.Buffer
	WriteFanIn(&b, []FanInLoad{big})
	if want := "| all hear all | 100 | 1000 | 10k | 9900 | 100 | 103.7 kB/s | 20.0 + 10.0 | 0.3% | 0.3% | 102.7 kB/s | 550ms | — |"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks\n%s\n%s", want, b.String())
	}
}

func near10(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Abs(b) }

// TestHeartbeat checks that the measured heartbeat is what a busy node
// publishes: a NodeInfo that decodes back whole, with its reading's
// resources, steps and placements.
func TestHeartbeat(t *testing.T) {
	data := heartbeats(7)[6]
	var info api.NodeInfo
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatal(err)
	}
	r := info.Reading
	if info.Name != "node-0007" || r.Node != info.Name || info.HTTP == "" || info.Cluster == "" || len(info.Features) == 0 {
		t.Fatalf("heartbeat %s", data)
	}
	if len(r.Resources) != 3 || r.Resources["db"].Free != 18 || r.InFlightSum != 6 || len(r.Completed) != 7 || r.Placed != 52118 {
		t.Fatalf("reading %+v", r)
	}
	if len(data) < 800 || len(data) > 1500 {
		t.Errorf("a heartbeat of %d bytes: %s", len(data), data)
	}
	// The summary keeps what placement reads.
	got := entryOf(r).reading()
	if got.Node != r.Node || got.Cores != r.Cores || got.MemUsed != r.MemUsed || got.InFlightSum != r.InFlightSum ||
		got.Placed != r.Placed || got.Resources["sms"].Free != r.Resources["sms"].Free || math.Abs(got.CPU-r.CPU) > 5e-4 {
		t.Errorf("through a summary %+v\nbecame %+v", r, got)
	}
	want := fmt.Sprintf("MSG %s 1 %d\r\n%s\r\n", bus.NodeSubject(info.Name), len(data), data)
	if n := framed(bus.NodeSubject(info.Name), len(data)); n != len(want) {
		t.Errorf("framed = %d, want %d", n, len(want))
	}
}

// TestStandIns checks that the stand-ins do the work they are measured for:
// a listener holds every node in its placement view, and a node's view
// replaced by a summary holds them with their placing rates.
func TestStandIns(t *testing.T) {
	hbs := heartbeats(20)
	l := newListener(nil)
	for _, h := range append(hbs, hbs...) {
		l.hear(h)
	}
	if n := len(l.view.Nodes()); n != 20 || len(l.nodes) != 20 {
		t.Fatalf("the listener's view holds %d nodes, its map %d", n, len(l.nodes))
	}
	a := fullAggregator(20)
	var v summaryView
	v.hear(a.summarise())
	for name, info := range a.nodes {
		info.Reading.Time = info.Reading.Time.Add(2 * time.Second)
		info.Reading.Placed += 10
		a.nodes[name] = info
	}
	v.hear(a.summarise())
	if len(v.nodes) != 20 || v.nodes[0].Node != "node-0001" || v.nodes[19].Placing != 5 {
		t.Fatalf("the view after two summaries: %d nodes, first %q, placing %v", len(v.nodes), v.nodes[0].Node, v.nodes[19].Placing)
	}
}

// BenchmarkHear is what one heartbeat costs the node hearing it, by how many
// nodes it knows (ns/op is the hearing goroutine's; cpu-ns/op counts the
// garbage collector too).
func BenchmarkHear(b *testing.B) {
	for _, n := range FanInSizes {
		b.Run(fmt.Sprintf("nodes=%d", n), benchHear(n))
	}
}

// BenchmarkAggregator is what an aggregator spends per heartbeat and per
// summary, and a node per summary, by cluster size.
func BenchmarkAggregator(b *testing.B) {
	for _, n := range FanInSizes {
		b.Run(fmt.Sprintf("collect/nodes=%d", n), benchCollect(n))
		b.Run(fmt.Sprintf("summarise/nodes=%d", n), benchSummarise(n))
		b.Run(fmt.Sprintf("hear-summary/nodes=%d", n), benchHearSummary(n))
	}
}

// BenchmarkTransport is NATS' CPU per heartbeat between two embedded servers
// joined by a route (cpu-ns/op counts both servers and both clients).
func BenchmarkTransport(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pair, err := openNATSPair(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer pair.close()
	for _, n := range []int{1, 100, 1000} {
		subject, payload := summarySubject, fullAggregator(n).summarise()
		if n == 1 {
			subject, payload = bus.NodeSubject(nodeName(1)), heartbeats(1)[0]
		}
		bench, stop, err := pair.benchTransport(subject, payload)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("bytes=%d", len(payload)), bench)
		stop()
	}
}
