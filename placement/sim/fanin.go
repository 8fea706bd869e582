package sim

// The heartbeat fan-in model: what it costs that every node hears every
// node's heartbeat each second (cluster.Membership), from sizes and CPU costs
// measured on this machine (fanin_measure.go), against designs that hear less.

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/placement"
)

// A FanInDesign is how the nodes of a cluster learn each other's readings.
type FanInDesign struct {
	Name string
	// Interval is the time between two heartbeats of a node.
	Interval time.Duration
	// Aggregators is 0 when every node hears every node's heartbeat, as
	// cluster.Membership does. Otherwise only this many aggregator nodes
	// hear the heartbeats; each publishes a compact summary of every node's
	// reading once per Interval, and every other node hears one aggregator's
	// summary. With no more nodes than aggregators it is the first design.
	Aggregators int
}

// FanInDesigns are the designs compared by default: today's, today's at a
// slower interval, and three aggregators publishing summaries.
var FanInDesigns = []FanInDesign{
	{Name: "all hear all", Interval: time.Second},
	{Name: "all hear all, 5s", Interval: 5 * time.Second},
	{Name: "3 aggregators + summary", Interval: time.Second, Aggregators: 3},
}

// FanInSizes are the cluster sizes measured by default.
var FanInSizes = []int{3, 10, 100, 1000}

// FanInCosts are what the model multiplies, measured at one cluster size.
type FanInCosts struct {
	Nodes int
	// HeartbeatBytes is one heartbeat's payload: an api.NodeInfo with its
	// meter reading, JSON-encoded as cluster.Membership publishes it.
	// SummaryBytes is one summary of Nodes compact entries.
	HeartbeatBytes, SummaryBytes int
	// Hear is the CPU a node that knows Nodes nodes spends on one heartbeat:
	// decoding it and what cluster.Membership.onHeartbeat and the engine's
	// onPeer do with it (store it, put its reading in the placement view,
	// learn its resource bindings), with placement reading the view after
	// every heartbeat (a coordinator placing steps without pause).
	Hear time.Duration
	// Transport is the CPU NATS spends carrying one heartbeat from a
	// publisher to a subscriber on another server over a route (both
	// servers and both clients); TransportSummary the same for a summary.
	Transport, TransportSummary time.Duration
	// Collect is what an aggregator spends on one heartbeat (decode and
	// store), Summarise what it spends building and encoding one summary,
	// and HearSummary what a node spends decoding one and replacing its view.
	Collect, Summarise, HearSummary time.Duration
}

// A FanInLoad is what one design costs a cluster, per second.
type FanInLoad struct {
	Design FanInDesign
	Costs  FanInCosts
	// Deliveries are the messages the NATS servers deliver to subscribers,
	// cluster-wide; Routed those they forward to one another (one embedded
	// server per node, fully meshed, as bus.Options.Peers builds them).
	Deliveries, Routed float64
	// PerNode is the messages a node hears, BytesPerNode their bytes with
	// NATS' framing, and Message the CPU it spends on one of them (handling
	// and transport). For aggregator designs these are a node that is not an
	// aggregator.
	PerNode, BytesPerNode float64
	Message               time.Duration
	// Handling is the share of one core a node spends on the messages it
	// hears, CPU the same with NATS' transport. The handler runs on one
	// goroutine (bus.Subscribe): past 1, heartbeats queue up until NATS drops
	// them as a slow consumer and live peers are declared lost.
	Handling, CPU float64
	// Busiest is the share of one core of the busiest node (an aggregator,
	// or any node when there are none) and Egress the bytes per second its
	// server sends to other servers. An aggregator is charged the whole
	// transport of each summary it sends, and its listeners too: an upper
	// bound on both.
	Busiest, Egress float64
	// Age is the mean age of a reading when placement reads it.
	Age time.Duration
	// Ratio and P99 are the simulator's makespan over its lower bound and
	// p99 slowdown for Drover's policy at load 0.8 with readings that old
	// (0: not simulated).
	Ratio, P99 float64
}

// Model returns the load of design d on a cluster with costs c.
func Model(d FanInDesign, c FanInCosts) FanInLoad {
	n, a, sec := float64(c.Nodes), float64(d.Aggregators), d.Interval.Seconds()
	hb := float64(framed(bus.NodeSubject(nodeName(c.Nodes)), c.HeartbeatBytes))
	l := FanInLoad{Design: d, Costs: c}
	if a == 0 || a >= n {
		// Every node hears every heartbeat, its own included; each server
		// sends its node's heartbeat to every other server.
		l.Deliveries, l.Routed = n*n/sec, n*(n-1)/sec
		hear := c.Hear
		// A large view's snapshot is copied every SnapshotEvery: its readings
		// are half that older on average.
		l.Age = d.Interval/2 + placement.SnapshotEvery(c.Nodes)/2
		l.PerNode, l.BytesPerNode, l.Message = n/sec, n*hb/sec, hear+c.Transport
		l.Handling, l.CPU = l.PerNode*hear.Seconds(), l.PerNode*l.Message.Seconds()
		l.Busiest, l.Egress = l.CPU, (n-1)*hb/sec
		return l
	}
	sum := float64(framed(summarySubject, c.SummaryBytes))
	// Every heartbeat reaches the aggregators (over a route unless it is
	// their own); every other node hears one aggregator's summary.
	l.Deliveries, l.Routed = (n*a+n-a)/sec, (a*(n-1)+n-a)/sec
	l.PerNode, l.BytesPerNode, l.Message = 1/sec, sum/sec, c.HearSummary+c.TransportSummary
	l.Handling, l.CPU = c.HearSummary.Seconds()/sec, l.Message.Seconds()/sec
	// An aggregator decodes every heartbeat, encodes a summary and its
	// server sends the summary to its share of the other nodes: each copy is
	// charged the whole transport, an upper bound.
	copies := (n - a) / a
	agg := (n*(c.Collect+c.Transport).Seconds() + c.Summarise.Seconds() + copies*c.TransportSummary.Seconds()) / sec
	l.Busiest, l.Egress = max(agg, l.CPU), copies*sum/sec
	// A reading waits for its aggregator's next summary: half an interval
	// more on average.
	l.Age = d.Interval
	return l
}

// summarySubject is where an aggregator would publish its summary.
const summarySubject = "drover.summary.node-0001"

// framed is the bytes of a message as a NATS server sends it to a
// subscriber: MSG <subject> <sid> <size>\r\n<payload>\r\n (a route's RMSG
// line is about as long).
func framed(subject string, payload int) int {
	return len("MSG ") + len(subject) + len(" 1 ") + len(strconv.Itoa(payload)) + len("\r\n") + payload + len("\r\n")
}

// WriteFanIn writes the loads as a markdown table.
func WriteFanIn(w io.Writer, loads []FanInLoad) {
	fmt.Fprintln(w, "| design | nodes | heartbeat / summary bytes | NATS deliveries/s | routed/s | messages/s per node | per node in | µs per message (handling + NATS) | CPU per node | busiest node CPU | busiest server out | reading age | placement (sim, load 0.8): makespan/LB, p99 |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, l := range loads {
		c := l.Costs
		size, hear, transport := strconv.Itoa(c.HeartbeatBytes), c.Hear, c.Transport
		if l.Design.Aggregators > 0 && l.Design.Aggregators < c.Nodes {
			size, hear, transport = fmt.Sprintf("%d / %d", c.HeartbeatBytes, c.SummaryBytes), c.HearSummary, c.TransportSummary
		}
		quality := "—"
		if l.Ratio > 0 {
			quality = fmt.Sprintf("%.3f, %.1f", l.Ratio, l.P99)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			l.Design.Name, c.Nodes, size, rate(l.Deliveries), rate(l.Routed), rate(l.PerNode), byteRate(l.BytesPerNode),
			fmt.Sprintf("%s + %s", micros(hear), micros(transport)), percent(l.CPU), percent(l.Busiest),
			byteRate(l.Egress), l.Age, quality)
	}
}

// rate prints a rate with three significant figures.
func rate(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0")
	}
}

func byteRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1f MB/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f kB/s", v/1e3)
	default:
		return fmt.Sprintf("%.0f B/s", v)
	}
}

func micros(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e3) }

func percent(v float64) string {
	if v < 0.001 {
		return fmt.Sprintf("%.3f%%", v*100)
	}
	return fmt.Sprintf("%.1f%%", v*100)
}
