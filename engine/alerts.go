package engine

import (
	"time"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/breaker"
	"github.com/droverhq/drover/starlark/builtins"
)

// newAlerts starts the node's alert rules (Options.Alerts), their
// notifiers the opened integrations that can notify (slack, pagerduty).
func (n *Node) newAlerts(opened *builtins.Opened) (*alert.Alerts, error) {
	if len(n.opts.Alerts) == 0 {
		return nil, nil
	}
	notifiers := map[string]alert.Notifier{}
	for _, in := range n.opts.Registry.Integrations() {
		if nt, ok := opened.Get(in.Name).(alert.Notifier); ok {
			notifiers[in.Name] = nt
		}
	}
	return alert.New(n.opts.Alerts, notifiers, n.log)
}

// breakerChanges tells the alert rules when a breaker opens and when it
// closes again, from the node's breaker list on each heartbeat (it holds
// the breakers that are not closed).
type breakerChanges struct {
	alerts *alert.Alerts
	open   map[string]bool
}

func (b *breakerChanges) observe(list []breaker.Status) {
	if b.alerts == nil {
		return
	}
	now := time.Now()
	open := make(map[string]bool, len(list))
	for _, st := range list {
		switch {
		case b.open[st.Target]: // open, or half-open trying: still not closed
			open[st.Target] = true
		case st.State == breaker.Open:
			b.alerts.BreakerChanged(st.Target, true, now)
			open[st.Target] = true
		}
	}
	for target := range b.open {
		if !open[target] {
			b.alerts.BreakerChanged(target, false, time.Time{})
		}
	}
	b.open = open
}

// reportsLosses reports whether this node is the one that tells the alert
// rules of lost nodes: the live node first by name, so that a loss is
// reported once in the cluster.
func (n *Node) reportsLosses() bool {
	for _, info := range n.cluster.Nodes() {
		if info.Name < n.opts.Name && n.cluster.IsLive(info.Name) {
			return false
		}
	}
	return true
}
