package runs

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/api"
)

// BenchmarkListBy100k lists 100 runs out of 100,000 indexed on file storage.
// The runs are indexed as coordinators do (at start, then at end) by 32
// writers, ids taken just before their first write; 1% have customer=acme,
// every run has env=prod, 1 in 7 failed, 1 in 200 is still running.
func BenchmarkListBy100k(b *testing.B) {
	s := newTestStore(b)
	t0 := time.Now()
	seedRuns(b, s, 100_000)
	b.Logf("seeded 100,000 runs in %v", time.Since(t0))
	ctx := context.Background()
	for _, bm := range []struct {
		name   string
		filter api.ListFilter
	}{
		{"Attr", api.ListFilter{Attrs: map[string]string{"customer": "acme"}}},
		{"AttrStatusSince", api.ListFilter{Attrs: map[string]string{"customer": "acme"}, Status: api.StatusFailed, Since: 24 * time.Hour}},
		{"AttrEveryRun", api.ListFilter{Attrs: map[string]string{"env": "prod"}}},
		{"StatusCompleted", api.ListFilter{Status: api.StatusCompleted}},
		{"StatusFailed", api.ListFilter{Status: api.StatusFailed}},
		{"StatusRunning", api.ListFilter{Status: api.StatusRunning}},
		{"Since", api.ListFilter{Since: 24 * time.Hour}},
		{"NoFilter", api.ListFilter{}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				runs, err := s.List(ctx, bm.filter)
				if err != nil {
					b.Fatal(err)
				}
				if len(runs) != 100 {
					b.Fatalf("listed %d runs, want 100", len(runs))
				}
			}
		})
	}
}

func seedRuns(b testing.TB, s *Store, count int) {
	ctx := context.Background()
	const writers = 32
	var mu sync.Mutex
	entropy := ulid.Monotonic(rand.New(rand.NewSource(1)), 0)
	newID := func() string {
		mu.Lock()
		defer mu.Unlock()
		return ulid.MustNew(ulid.Now(), entropy).String()
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += writers {
				customer := fmt.Sprintf("c%d", i%500)
				if i%100 == 7 {
					customer = "acme"
				}
				now := time.Now().UTC()
				rec := api.Run{ID: newID(), Script: "billing", Hash: "0f3a9c", Status: api.StatusRunning, Coordinator: "seed", Started: now,
					Attrs: map[string]string{"customer": customer, "env": "prod"}}
				if err := s.Put(ctx, rec, "", rec.Attrs); err != nil {
					errs <- err
					return
				}
				switch {
				case i%200 == 1:
					continue
				case i%7 == 0:
					rec.Status = api.StatusFailed
					rec.Error = &api.RunError{Message: "http.post: 503 Service Unavailable"}
				default:
					rec.Status = api.StatusCompleted
					rec.Result = []byte(`{"invoice":"INV-20391","total":129.5}`)
				}
				rec.Ended, rec.Steps = &now, 12
				if err := s.Put(ctx, rec, api.StatusRunning, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkListWhileIndexing lists runs by attribute on a bucket of 20,000
// runs (seeded as in BenchmarkListBy100k) while 64 writers index more runs
// as coordinators do, at start then at end, as fast as they can; the
// Concurrent cases list from 8 goroutines at once. Besides the mean it
// reports the slowest list and the 99th percentile: a list under load is
// slower, and must not be much slower than the work it does.
func BenchmarkListWhileIndexing(b *testing.B) {
	s := newTestStore(b)
	seedRuns(b, s, 20_000)
	wctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	entropy := ulid.Monotonic(rand.New(rand.NewSource(3)), 0)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; wctx.Err() == nil; i += 64 {
				mu.Lock()
				id := ulid.MustNew(ulid.Now(), entropy).String()
				mu.Unlock()
				customer := fmt.Sprintf("c%d", i%500)
				if i%100 == 7 {
					customer = "acme"
				}
				rec := api.Run{ID: id, Script: "billing", Hash: "0f3a9c", Status: api.StatusRunning, Coordinator: "load", Started: time.Now().UTC(),
					Attrs: map[string]string{"customer": customer, "env": "prod"}}
				if s.Put(wctx, rec, "", rec.Attrs) != nil {
					return
				}
				rec.Status = api.StatusCompleted
				if s.Put(wctx, rec, api.StatusRunning, nil) != nil {
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer stop()
	ctx := context.Background()
	for _, bm := range []struct {
		name     string
		filter   api.ListFilter
		parallel int // goroutines per GOMAXPROCS
	}{
		{"Attr", api.ListFilter{Attrs: map[string]string{"customer": "acme"}}, 0},
		{"ScriptAttr1000", api.ListFilter{Script: "billing", Attrs: map[string]string{"customer": "acme"}, Limit: 1000}, 0},
		{"NoFilter", api.ListFilter{}, 0},
		{"Concurrent/Attr", api.ListFilter{Attrs: map[string]string{"customer": "acme"}}, 4},
		{"Concurrent/ScriptAttr1000", api.ListFilter{Script: "billing", Attrs: map[string]string{"customer": "acme"}, Limit: 1000}, 4},
	} {
		b.Run(bm.name, func(b *testing.B) {
			var tmu sync.Mutex
			var took []time.Duration
			list := func() {
				t0 := time.Now()
				if _, err := s.List(ctx, bm.filter); err != nil {
					b.Error(err)
				}
				tmu.Lock()
				took = append(took, time.Since(t0))
				tmu.Unlock()
			}
			if bm.parallel > 0 {
				b.SetParallelism(bm.parallel)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						list()
					}
				})
			} else {
				for b.Loop() {
					list()
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)-1])/1e6, "max-ms")
			b.ReportMetric(float64(took[len(took)*99/100])/1e6, "p99-ms")
		})
	}
}
