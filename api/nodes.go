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
	// Placements are the node's latest placement decisions as a
	// coordinator, newest first (up to PlacementsKept).
	Placements []PlacementDecision `json:"placements"`
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

// PlacementsKept is how many of its latest placement decisions a node
// announces in its heartbeats.
const PlacementsKept = 20

// PlacementDecision is one step placed by a coordinator: on which node and
// why (GET /v1/nodes).
type PlacementDecision struct {
	Time    time.Time `json:"time"`
	Run     string    `json:"run"`
	Step    string    `json:"step"`
	Builtin string    `json:"builtin"`
	Node    string    `json:"node"`
	Reason  string    `json:"reason,omitempty"`
}

// Kinds of cluster events.
const (
	EventNodeJoined = "node_joined"
	EventNodeLost   = "node_lost"
	EventAdopted    = "adopted"
)

// ClusterEvent is something that happened to the cluster (GET
// /v1/cluster/events): a node joined or was lost, or a run was adopted by
// Node from From.
type ClusterEvent struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Node   string    `json:"node"`
	Run    string    `json:"run,omitempty"`
	From   string    `json:"from,omitempty"`
	Detail string    `json:"detail,omitempty"`
}
