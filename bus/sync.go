package bus

import (
	"fmt"
	"strings"
	"time"
)

// DefaultSyncInterval is how often the embedded server flushes its stores to
// disk under the interval policy, nats-server's own default.
const DefaultSyncInterval = 2 * time.Minute

// SyncPolicy says when what the embedded server stores reaches the disk,
// and so what an acknowledgement means.
//
//   - Always: every write is on disk (fsync) before JetStream acknowledges
//     it; on a replicated stream, on disk on a quorum of servers (the Raft
//     log is synced before each server answers). A power loss loses nothing
//     acknowledged.
//   - Interval: writes reach the disk at least every Interval. A crash of the
//     process loses nothing (the operating system holds the writes), but a
//     power loss or kernel crash can lose what was acknowledged in the last
//     Interval.
//
// The zero value is the interval policy with DefaultSyncInterval. It applies
// to an embedded server only: an external NATS follows its own configuration
// (sync_interval).
type SyncPolicy struct {
	Always   bool
	Interval time.Duration
}

// SyncAlways is the policy under which nothing acknowledged is lost.
var SyncAlways = SyncPolicy{Always: true}

// ParseSync reads a policy as written on a command line: "always",
// "interval" (DefaultSyncInterval) or "interval:DURATION" (e.g. interval:1s).
func ParseSync(s string) (SyncPolicy, error) {
	switch {
	case s == "always":
		return SyncAlways, nil
	case s == "interval":
		return SyncPolicy{Interval: DefaultSyncInterval}, nil
	case strings.HasPrefix(s, "interval:"):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "interval:"))
		if err != nil || d <= 0 {
			return SyncPolicy{}, fmt.Errorf("bus: sync policy %q: the interval is not a positive duration (e.g. interval:1s)", s)
		}
		return SyncPolicy{Interval: d}, nil
	}
	return SyncPolicy{}, fmt.Errorf("bus: sync policy %q: want always, interval or interval:DURATION (e.g. interval:1s)", s)
}

// String writes the policy as ParseSync reads it.
func (p SyncPolicy) String() string {
	if p.Always {
		return "always"
	}
	return "interval:" + p.interval().String()
}

func (p SyncPolicy) interval() time.Duration {
	if p.Interval <= 0 {
		return DefaultSyncInterval
	}
	return p.Interval
}
