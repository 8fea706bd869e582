package engine

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/breaker"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/metrics"
	"github.com/droverhq/drover/panel"
)

// gauges reports, on each heartbeat, the levels the node's metrics keep
// as gauges: its resources' free units and its circuit breakers' states.
type gauges struct {
	m  *metrics.Metrics
	mu sync.Mutex
	// open are the targets whose breaker was reported not closed: reported
	// closed once they leave the list (it holds only breakers that are not).
	open map[string]bool
}

// resources reports each resource's free units.
func (g *gauges) resources(r meter.Reading) {
	for name, st := range r.Resources {
		g.m.ResourceLevel(name, st.Free)
	}
}

// breakers reports each breaker's state, and closed for those cleared
// since the last report.
func (g *gauges) breakers(list []breaker.Status) {
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := make(map[string]bool, len(list))
	for _, st := range list {
		state := metrics.BreakerClosed
		switch st.State {
		case breaker.Open:
			state = metrics.BreakerOpen
		case breaker.HalfOpen:
			state = metrics.BreakerHalfOpen
		}
		g.m.BreakerState(st.Target, state)
		seen[st.Target] = true
	}
	for target := range g.open {
		if !seen[target] {
			g.m.BreakerState(target, metrics.BreakerClosed)
		}
	}
	g.open = seen
}

// Handler returns the node's HTTP handler: its JSON API (api/server) under
// /v1/, its metrics in the Prometheus text format at GET /metrics, and the
// control panel (package panel) everywhere else.
func (n *Node) Handler() http.Handler {
	ui := panel.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/metrics":
			n.metrics.Handler().ServeHTTP(w, r)
		case strings.HasPrefix(p, "/v1/") || p == "/v1":
			n.server.ServeHTTP(w, r)
		default:
			ui.ServeHTTP(w, r)
		}
	})
}

// timed returns a function that reports to fn how long since timed was
// called.
func timed(fn func(time.Duration)) func() {
	start := time.Now()
	return func() { fn(time.Since(start)) }
}
