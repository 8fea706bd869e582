package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/droverhq/drover/api"
)

// Cluster events: what happened to the cluster as a whole (a node joined, a
// node was lost, a run was adopted), kept in a small stream for the control
// panel's nodes page and ctl. Several nodes may notice the same event (every
// survivor notices a loss): each publishes it with the same message id, and
// the stream keeps one.
const (
	// ClusterStream keeps the latest cluster events.
	ClusterStream = "DROVER_CLUSTER"
	// ClusterSubject is the subject of cluster events.
	ClusterSubject = "drover.cluster.events"
	// clusterKeep bounds the events kept, clusterMaxAge their age.
	clusterKeep   = 1000
	clusterMaxAge = 7 * 24 * time.Hour
)

// ensureCluster creates the cluster events stream.
func (b *Bus) ensureCluster(ctx context.Context) error {
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ClusterStream,
		Description: "Drover cluster events: joins, losses, adoptions",
		Subjects:    []string{ClusterSubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     clusterKeep,
		MaxAge:      clusterMaxAge,
		Duplicates:  2 * time.Minute,
		Replicas:    b.opts.Replicas,
	})
	if err != nil {
		return fmt.Errorf("bus: cluster events stream: %w", err)
	}
	return nil
}

// PublishClusterEvent records ev once per id: nodes that notice the same
// event give the same id.
func (b *Bus) PublishClusterEvent(ctx context.Context, id string, ev api.ClusterEvent) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = b.js.Publish(ctx, ClusterSubject, data, append(pubRetry, jetstream.WithMsgID(id), jetstream.WithExpectStream(ClusterStream))...)
	return err
}

// ClusterEvents returns the latest limit cluster events, newest first.
func (b *Bus) ClusterEvents(ctx context.Context, limit int) ([]api.ClusterEvent, error) {
	s, err := b.js.Stream(ctx, ClusterStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.ClusterEvent{}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < limit; seq-- {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired or deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		var ev api.ClusterEvent
		if json.Unmarshal(m.Data, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out, nil
}
