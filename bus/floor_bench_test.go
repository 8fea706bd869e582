package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
)

// policies are the sync policies benchmarks compare: "always" with the bus's
// group sync (the default), "always-per-message" leaving each fsync to
// nats-server (SyncAlways, the design before group sync), and "interval".
var policies = []struct {
	name string
	opts func(bus.Options) bus.Options
}{
	{"always", func(o bus.Options) bus.Options { o.Sync = bus.SyncAlways; return o }},
	{"always-per-message", func(o bus.Options) bus.Options { o.Sync = bus.SyncAlways; return bus.WithoutGroupSync(o) }},
	{"interval", func(o bus.Options) bus.Options { o.Sync = bus.SyncPolicy{}; return o }},
}

// BenchmarkAppend measures one synchronous journal append (publish, wait for
// JetStream's acknowledgement and for the sync policy), the floor under every
// step's cost: from one writer and from 64 concurrent writers (each to a run
// of its own, as 64 concurrent runs write), on one embedded server (R1) under
// each sync policy; and in a 3-server cluster on loopback (R3, stored on a
// quorum before the acknowledgement; interval policy) from the stream
// leader's server and from a follower's.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	for _, p := range policies {
		bu := bustest.Open(b, p.opts(bus.Options{Name: "s1"}))
		b.Run("R1/"+p.name+"/1writer", func(b *testing.B) { benchFloor(b, bu, 1) })
		b.Run("R1/"+p.name+"/64writers", func(b *testing.B) { benchFloor(b, bu, 64) })
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	buses := bus.OpenCluster(b, cctx, 3)
	for _, bu := range buses {
		defer bu.Close()
	}
	for i, bu := range buses {
		b.Run(fmt.Sprintf("R3/via-c%d", i+1), func(b *testing.B) { benchFloor(b, bu, 1) })
	}
}

func benchFloor(b *testing.B, bu *bus.Bus, writers int) {
	f, err := bustest.MeasureFloor(context.Background(), bu, writers, (b.N+writers-1)/writers)
	if err != nil {
		b.Fatal(err)
	}
	f.Report(b, "")
}
