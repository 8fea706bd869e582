package bus

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	cpu0 := time.Duration(ru0.Utime.Nano() + ru0.Stime.Nano())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := bu.Append(ctx, JournalSubject(run, "result", fmt.Sprint(i)), fmt.Sprint(run, i), nil, []byte(`{"step":"1","value":null}`)); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64((time.Duration(ru.Utime.Nano()+ru.Stime.Nano())-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkNewest reads the newest n revisions of a runs bucket of 20,000
// keys (300-byte values, every tenth key removed, as status keys are) with
// Newest: on an embedded server, and on the external NATS (DROVER_TEST_NATS,
// default nats://127.0.0.1:4222) when it is reachable (its keys removed after).
func BenchmarkNewest(b *testing.B) {
	ctx := context.Background()
	single, err := Open(ctx, Options{Name: "s1", DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer single.Close()
	buses := []*Bus{single}
	url := os.Getenv("DROVER_TEST_NATS")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	if ext, err := Open(ctx, Options{Name: "t", URL: url}); err == nil {
		defer ext.Close()
		buses = append(buses, ext)
	}
	value := bytes.Repeat([]byte("x"), 300)
	for _, bu := range buses {
		kv := bu.Bucket(RunsBucket)
		p := fmt.Sprintf("bench.%d.", time.Now().UnixNano())
		var puts []*PendingPut
		for i := range 20_000 {
			put, err := kv.PutAsync(fmt.Sprintf("%s%d", p, i), value)
			if err != nil {
				b.Fatal(err)
			}
			puts = append(puts, put)
			if len(puts) == 1000 {
				for _, put := range puts {
					if _, err := put.Wait(ctx); err != nil {
						b.Fatal(err)
					}
				}
				puts = puts[:0]
			}
		}
		for i := 0; i < 20_000; i += 10 {
			if err := kv.Remove(ctx, fmt.Sprintf("%s%d", p, i)); err != nil {
				b.Fatal(err)
			}
		}
		// Leave the shared external NATS as it was.
		defer func() {
			if s, err := kv.getStream(ctx); err == nil {
				s.Purge(ctx, jetstream.WithPurgeSubject(kv.subject(p+">")))
			}
		}()
		where := "embedded"
		if bu != single {
			where = "external-" + bu.nc.ConnectedServerVersion()
		}
		for _, n := range []uint64{1200, 20_000} {
			b.Run(fmt.Sprintf("%s/n=%d", where, n), func(b *testing.B) {
				for b.Loop() {
					w, err := kv.Newest(ctx, n)
					if err != nil {
						b.Fatal(err)
					}
					if len(w.Entries) < int(n)*8/10 {
						b.Fatalf("%d entries in %d revisions", len(w.Entries), n)
					}
				}
			})
		}
	}
}

// BenchmarkAppendWriters measures journal appends from 64 concurrent writers
// on one embedded server (R1), each a goroutine appending synchronously
// (Bus.Append, as BenchmarkAppend) to a run of its own: the floor under the
// throughput of 64 concurrent runs. It reports appends/s and each append's
// p50/p99.
func BenchmarkAppendWriters(b *testing.B) {
	ctx := context.Background()
	single, err := Open(ctx, Options{Name: "s1", DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer single.Close()
	b.Run("R1/64writers", func(b *testing.B) { benchAppendWriters(b, single, 64) })
}

func benchAppendWriters(b *testing.B, bu *Bus, writers int) {
	ctx := context.Background()
	prefix := fmt.Sprintf("bench%d", time.Now().UnixNano())
	per := (b.N + writers - 1) / writers
	lat := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	cpu0 := time.Duration(ru0.Utime.Nano() + ru0.Stime.Nano())
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := fmt.Sprintf("%s-%d", prefix, w)
			l := make([]time.Duration, 0, per)
			for i := range per {
				t0 := time.Now()
				if _, err := bu.Append(ctx, JournalSubject(run, "result", fmt.Sprint(i)), fmt.Sprint(run, i), nil, []byte(`{"step":"1","value":null}`)); err != nil {
					b.Error(err)
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64((time.Duration(ru.Utime.Nano()+ru.Stime.Nano())-cpu0).Microseconds())/float64(writers*per), "cpu-µs/op")
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "appends/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}
