package runs

import (
	"context"
	"fmt"
	"math/rand"
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
