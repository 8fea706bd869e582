package api

import (
	"time"

	"github.com/droverhq/drover/meter"
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
	// Seen is when this node last received the heartbeat; Age its age.
	Seen time.Time     `json:"seen"`
	Age  time.Duration `json:"age_ns"`
}
