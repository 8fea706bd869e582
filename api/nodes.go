package api

import (
	"time"

	"github.com/droverhq/drover/breaker"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/starlark/builtins"
)

// NodeInfo is one node as the cluster sees it: its addresses and its latest
// meter reading, published about once a second.
type NodeInfo struct {
	Name    string        `json:"name"`
	HTTP    string        `json:"http,omitempty"`
	NATS    string        `json:"nats,omitempty"`
	Cluster string        `json:"cluster,omitempty"`
	Started time.Time     `json:"started"`
	Reading meter.Reading `json:"reading"`
	// Features lists what the node's build understands beyond the first
	// journal format (e.g. "journal.folded-call"): a node uses a feature
	// only once every live node has it, so that a cluster upgrades one node
	// at a time.
	Features []string `json:"features,omitempty"`
	// Integrations are the states of the node's integrations (databases,
	// caches, queues its builtins reach), as its last checks found them.
	Integrations []builtins.IntegrationStatus `json:"integrations,omitempty"`
	// Breakers are the node's circuit breakers that are open, trying, or
	// counting failures (package breaker).
	Breakers []breaker.Status `json:"breakers,omitempty"`
	// Seen is when this node last received the heartbeat; Age its age.
	Seen time.Time     `json:"seen"`
	Age  time.Duration `json:"age_ns"`
}

// NodeIntegrations is one node's integrations, as GET /v1/integrations
// lists them.
type NodeIntegrations struct {
	Node         string                       `json:"node"`
	Integrations []builtins.IntegrationStatus `json:"integrations"`
	Breakers     []breaker.Status             `json:"breakers,omitempty"`
}

// IntegrationsOf returns the integrations of each of nodes.
func IntegrationsOf(nodes []NodeInfo) []NodeIntegrations {
	out := make([]NodeIntegrations, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, NodeIntegrations{Node: n.Name, Integrations: n.Integrations, Breakers: n.Breakers})
	}
	return out
}
