package bus

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkAppend measures one synchronous journal append (publish and wait
// for JetStream's acknowledgement): on one embedded server (R1), and in a
// 3-server cluster on loopback (R3, the entry stored on a quorum before the
// acknowledgement) from the stream leader's server and from a follower's.
// It is the floor under every step's cost.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	single, err := Open(ctx, Options{Name: "s1", DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer single.Close()
	b.Run("R1", func(b *testing.B) { benchAppend(b, single) })

	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	buses := openCluster(b, cctx, 3)
	for _, bu := range buses {
		defer bu.Close()
	}
	for i, bu := range buses {
		b.Run(fmt.Sprintf("R3/via-c%d", i+1), func(b *testing.B) { benchAppend(b, bu) })
	}
}

func benchAppend(b *testing.B, bu *Bus) {
	ctx := context.Background()
	run := fmt.Sprintf("bench%d", time.Now().UnixNano())
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := bu.Append(ctx, JournalSubject(run, "result", fmt.Sprint(i)), fmt.Sprint(run, i), nil, []byte(`{"step":"1","value":null}`)); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
