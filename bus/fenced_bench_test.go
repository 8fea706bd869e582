package bus

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkFencedAppend measures what the proposed journal layout of one
// subject per run (docs/architecture.md, "One subject per run") would
// pay per entry, against today's write-once entry on a subject of its own,
// on the same embedded server in the same run (interval policy): "subject"
// is Append (a subject per entry, MaxMsgsPerSubject 1, message id);
// "fenced" publishes each entry of a run to one subject with
// Nats-Expected-Last-Subject-Sequence set to the run's previous entry (and a
// message id), on a stream without the per-subject limit, as the layout
// would. From one writer, and from 64 writers each appending to a run of its
// own.
func BenchmarkFencedAppend(b *testing.B) {
	ctx := context.Background()
	bu := openBenchBus(b)
	logStream := "BENCH_RUNLOG"
	if _, err := bu.js.CreateStream(ctx, jetstream.StreamConfig{Name: logStream, Subjects: []string{"benchlog.>"},
		Storage: jetstream.FileStorage, Duplicates: journalDuplicates, AllowDirect: true}); err != nil {
		b.Fatal(err)
	}
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("subject/%dwriters", writers), func(b *testing.B) {
			prefix := fmt.Sprintf("bench%d", time.Now().UnixNano())
			runWriters(b, writers, func(w, i int) error {
				run := fmt.Sprintf("%s-%d", prefix, w)
				_, err := bu.Append(ctx, JournalSubject(run, "result", strconv.Itoa(i)), run+"/"+strconv.Itoa(i), nil, []byte(`{"step":"1","value":null}`))
				return err
			})
		})
		b.Run(fmt.Sprintf("fenced/%dwriters", writers), func(b *testing.B) {
			prefix := fmt.Sprintf("bench%d", time.Now().UnixNano())
			last := make([]uint64, writers)
			runWriters(b, writers, func(w, i int) error {
				run := fmt.Sprintf("%s-%d", prefix, w)
				m := &nats.Msg{Subject: "benchlog." + run, Data: []byte(`{"kind":"result","key":"1","data":{"step":"1","value":null}}`),
					Header: nats.Header{"Nats-Expected-Last-Subject-Sequence": {strconv.FormatUint(last[w], 10)}}}
				ack, err := bu.js.PublishMsg(ctx, m, jetstream.WithMsgID(run+"/"+strconv.Itoa(i)), jetstream.WithExpectStream(logStream))
				if err != nil {
					return err
				}
				last[w] = ack.Sequence
				return bu.synced(ctx)
			})
		})
	}
}

// openBenchBus opens an embedded bus under the interval policy for a
// benchmark.
func openBenchBus(b *testing.B) *Bus {
	b.Helper()
	bu, err := Open(context.Background(), Options{Name: "bench", DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bu.Close() })
	return bu
}

// runWriters runs b.N appends spread over writers goroutines and reports
// appends/s and the p50 of one append.
func runWriters(b *testing.B, writers int, appendOne func(w, i int) error) {
	each := (b.N + writers - 1) / writers
	lat := make([][]time.Duration, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				t0 := time.Now()
				if err := appendOne(w, i); err != nil {
					errs[w] = err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for w := range writers {
		if errs[w] != nil {
			b.Fatal(errs[w])
		}
		all = append(all, lat[w]...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "appends/s")
	b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1e3, "p50-µs")
}
