package runs

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
)

// newTestStore returns a runs store on a bus of its own.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	return NewStore(Options{Bus: bustest.Open(t, bus.Options{})})
}

// seedRun indexes a run the way a coordinator does: started with attrs, then
// moved through statuses, each write with the previous status.
func seedRun(t testing.TB, s *Store, rec api.Run, statuses ...string) {
	t.Helper()
	ctx := context.Background()
	rec.Status = api.StatusRunning
	if err := s.Put(ctx, rec, "", rec.Attrs); err != nil {
		t.Fatal(err)
	}
	for _, status := range statuses {
		prev := rec.Status
		rec.Status = status
		if err := s.Put(ctx, rec, prev, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func idAt(t time.Time, entropy *rand.Rand) string {
	return ulid.MustNew(ulid.Timestamp(t), entropy).String()
}

func ids(runs []api.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

// TestList runs List over runs started at chosen times, both as List plans it
// and in every way it can: through every index that can answer the filter,
// listed or newest keys first, and reading every revision.
func TestList(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	now := time.Now()
	entropy := rand.New(rand.NewSource(1))
	type seeded struct {
		name     string
		ago      time.Duration
		script   string
		attrs    map[string]string
		statuses []string // after running
	}
	runs := []seeded{
		{"old", 72 * time.Hour, "billing", map[string]string{"customer": "acme"}, []string{api.StatusCompleted}},
		{"done", 2 * time.Hour, "billing", map[string]string{"customer": "acme", "email": "ann.lee@example.com"}, []string{api.StatusCompleted}},
		{"failed", 90 * time.Minute, "billing", map[string]string{"customer": "acme", "note": "two words. a dot"}, []string{api.StatusFailed}},
		{"globex", 80 * time.Minute, "billing", map[string]string{"customer": "globex"}, []string{api.StatusCompleted}},
		{"blocked", 40 * time.Minute, "ship it", map[string]string{"customer": "acme", "region": "eu"}, []string{api.StatusBlocked}},
		{"resumed", 30 * time.Minute, "ship it", map[string]string{"customer": "acme", "region": "eu"}, []string{api.StatusBlocked, api.StatusRunning, api.StatusFailed}},
		{"cancelled", 20 * time.Minute, "billing", map[string]string{"customer": "initech"}, []string{api.StatusCancelled}},
		{"running", 10 * time.Minute, "ship it", map[string]string{"customer": "acme", "region": "us"}, nil},
		{"plain", 5 * time.Minute, "billing", nil, []string{api.StatusCompleted}},
	}
	id := map[string]string{}
	for _, r := range runs {
		id[r.name] = idAt(now.Add(-r.ago), entropy)
		seedRun(t, s, api.Run{ID: id[r.name], Script: r.script, Hash: "h", Attrs: r.attrs, Coordinator: "n1", Started: now.Add(-r.ago)}, r.statuses...)
	}
	// A tag after start adds an attribute, and a value that changes leaves the
	// old one behind in the index.
	tagged := api.Run{ID: idAt(now.Add(-3*time.Minute), entropy), Script: "billing", Status: api.StatusRunning, Attrs: map[string]string{"customer": "umbrella"}}
	id["tagged"] = tagged.ID
	if err := s.Put(ctx, tagged, "", tagged.Attrs); err != nil {
		t.Fatal(err)
	}
	tagged.Attrs = map[string]string{"customer": "hooli", "tier": "gold"}
	if err := s.Put(ctx, tagged, api.StatusRunning, tagged.Attrs); err != nil {
		t.Fatal(err)
	}
	tagged.Status = api.StatusCompleted
	if err := s.Put(ctx, tagged, api.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}

	want := func(names ...string) []string {
		out := []string{}
		for _, name := range names {
			out = append(out, id[name])
		}
		return out
	}
	tests := []struct {
		name   string
		filter api.ListFilter
		want   []string
	}{
		{"all", api.ListFilter{}, want("tagged", "plain", "running", "cancelled", "resumed", "blocked", "globex", "failed", "done", "old")},
		{"limit", api.ListFilter{Limit: 3}, want("tagged", "plain", "running")},
		{"attr", api.ListFilter{Attrs: map[string]string{"customer": "acme"}}, want("running", "resumed", "blocked", "failed", "done", "old")},
		{"attr limit", api.ListFilter{Attrs: map[string]string{"customer": "acme"}, Limit: 2}, want("running", "resumed")},
		{"attr and status", api.ListFilter{Attrs: map[string]string{"customer": "acme"}, Status: api.StatusFailed}, want("resumed", "failed")},
		{"attr and running", api.ListFilter{Attrs: map[string]string{"customer": "acme"}, Status: api.StatusRunning}, want("running")},
		{"attr and blocked", api.ListFilter{Attrs: map[string]string{"customer": "acme"}, Status: api.StatusBlocked}, want("blocked")},
		{"attrs and", api.ListFilter{Attrs: map[string]string{"customer": "acme", "region": "eu"}}, want("resumed", "blocked")},
		{"attrs and none", api.ListFilter{Attrs: map[string]string{"customer": "globex", "region": "eu"}}, want()},
		{"attr since", api.ListFilter{Attrs: map[string]string{"customer": "acme"}, Since: time.Hour}, want("running", "resumed", "blocked")},
		{"attr status since", api.ListFilter{Attrs: map[string]string{"customer": "acme"}, Status: api.StatusFailed, Since: time.Hour}, want("resumed")},
		{"email", api.ListFilter{Attrs: map[string]string{"email": "ann.lee@example.com"}}, want("done")},
		{"spaces and dots", api.ListFilter{Attrs: map[string]string{"note": "two words. a dot"}}, want("failed")},
		{"prefix of a value", api.ListFilter{Attrs: map[string]string{"note": "two words"}}, want()},
		{"unknown attr", api.ListFilter{Attrs: map[string]string{"customer": "nobody"}}, want()},
		{"tag added", api.ListFilter{Attrs: map[string]string{"tier": "gold"}}, want("tagged")},
		{"tag changed", api.ListFilter{Attrs: map[string]string{"customer": "hooli"}, Status: api.StatusCompleted}, want("tagged")},
		{"tag replaced", api.ListFilter{Attrs: map[string]string{"customer": "umbrella"}}, want()},
		{"completed", api.ListFilter{Status: api.StatusCompleted}, want("tagged", "plain", "globex", "done", "old")},
		{"failed", api.ListFilter{Status: api.StatusFailed}, want("resumed", "failed")},
		{"running", api.ListFilter{Status: api.StatusRunning}, want("running")},
		{"blocked", api.ListFilter{Status: api.StatusBlocked}, want("blocked")},
		{"cancelled", api.ListFilter{Status: api.StatusCancelled}, want("cancelled")},
		{"status since", api.ListFilter{Status: api.StatusCompleted, Since: 100 * time.Minute}, want("tagged", "plain", "globex")},
		{"since", api.ListFilter{Since: 25 * time.Minute}, want("tagged", "plain", "running", "cancelled")},
		{"since nothing", api.ListFilter{Since: time.Minute}, want()},
		{"script", api.ListFilter{Script: "ship it"}, want("running", "resumed", "blocked")},
		{"script and status", api.ListFilter{Script: "billing", Status: api.StatusCompleted, Limit: 2}, want("tagged", "plain")},
		{"script and attr", api.ListFilter{Script: "billing", Attrs: map[string]string{"customer": "acme"}}, want("failed", "done", "old")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.List(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("List = %v, want %v", ids(got), tt.want)
			}
			// Every index that can answer the filter gives the same runs.
			f := tt.filter
			if f.Limit == 0 {
				f.Limit = 100
			}
			var sinceID string
			if f.Since > 0 {
				sinceID = ulid.MustNew(ulid.Timestamp(time.Now().Add(-f.Since)), zeroEntropy{}).String()
			}
			for _, x := range indexes(f) {
				got, err := s.listStoredKeys(ctx, s.opts.Bus.Bucket(bus.RunsBucket), f, x.filter, sinceID)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(got), tt.want) {
					t.Errorf("all keys of %s: %v, want %v", x.filter, ids(got), tt.want)
				}
				// Reading the newest keys, a revision at a time at first.
				got, err = s.listNewestKeys(ctx, s.opts.Bus.Bucket(bus.RunsBucket), f, x.filter, sinceID, 1)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(got), tt.want) {
					t.Errorf("newest keys of %s: %v, want %v", x.filter, ids(got), tt.want)
				}
			}
			// So does reading the newest part of the bucket, a window at a time.
			got, err = s.list(ctx, s.opts.Bus.Bucket(bus.RunsBucket), f, 1, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("newest only: %v, want %v", ids(got), tt.want)
			}
		})
	}
}

// TestListNewestWindows lists from a bucket whose newest part holds runs
// started just now, so that a window short of the whole bucket answers.
func TestListNewestWindows(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	entropy := ulid.Monotonic(rand.New(rand.NewSource(2)), 0)
	// Older runs, written first.
	for i := range 200 {
		seedRun(t, s, api.Run{ID: idAt(time.Now().Add(-48*time.Hour+time.Duration(i)*time.Minute), rand.New(rand.NewSource(int64(i)))), Script: "old", Attrs: map[string]string{"n": fmt.Sprint(i)}}, api.StatusCompleted)
	}
	var recent []string
	for i := range 300 {
		rec := api.Run{ID: ulid.MustNew(ulid.Now(), entropy).String(), Script: "new", Attrs: map[string]string{"n": fmt.Sprint(i)}}
		status := api.StatusCompleted
		if i%10 == 0 {
			status = api.StatusFailed
		}
		seedRun(t, s, rec, status)
		recent = append(recent, rec.ID)
	}
	slices.Reverse(recent)
	got, err := s.list(ctx, s.opts.Bus.Bucket(bus.RunsBucket), api.ListFilter{Limit: 20}, firstWindow, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), recent[:20]) {
		t.Errorf("newest 20 = %v, want %v", ids(got), recent[:20])
	}
	got, err = s.List(ctx, api.ListFilter{Limit: 250, Script: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), recent[:250]) {
		t.Errorf("newest 250 = %v, want %v", ids(got), recent[:250])
	}
	got, err = s.List(ctx, api.ListFilter{Limit: 5, Status: api.StatusFailed})
	if err != nil {
		t.Fatal(err)
	}
	wantFailed := []string{}
	for i, id := range recent {
		if (299-i)%10 == 0 && len(wantFailed) < 5 {
			wantFailed = append(wantFailed, id)
		}
	}
	if !slices.Equal(ids(got), wantFailed) {
		t.Errorf("newest failed = %v, want %v", ids(got), wantFailed)
	}
	got, err = s.listNewestKeys(ctx, s.opts.Bus.Bucket(bus.RunsBucket), api.ListFilter{Limit: 5, Status: api.StatusFailed}, "s.failed.*", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), wantFailed) {
		t.Errorf("newest failed keys = %v, want %v", ids(got), wantFailed)
	}
}

func TestIndexRunAcknowledged(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	rec := api.Run{ID: ulid.Make().String(), Script: "s", Status: api.StatusRunning, Attrs: map[string]string{"k": "v"}}
	if err := s.Put(ctx, rec, "", rec.Attrs); err != nil {
		t.Fatal(err)
	}
	// Once indexRun returns, every key is readable.
	kv := s.opts.Bus.Bucket(bus.RunsBucket)
	for _, key := range []string{recordKey(rec.ID), statusKey(api.StatusRunning, rec.ID), scriptKey("s", api.StatusRunning, rec.ID), attrKey("k", "v", api.StatusRunning, rec.ID)} {
		if _, _, err := kv.Get(ctx, key); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	rec.Status = api.StatusCompleted
	if err := s.Put(ctx, rec, api.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kv.Get(ctx, statusKey(api.StatusRunning, rec.ID)); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("old status key: err = %v, want ErrNotFound", err)
	}
	got, err := s.Record(ctx, rec.ID)
	if err != nil || got.Status != api.StatusCompleted {
		t.Fatalf("record = %+v, %v", got, err)
	}
	// A rewrite with the same status (park, adopt, pin) writes every key of
	// the status again, so that they expire with the record.
	for _, key := range []string{statusKey(api.StatusCompleted, rec.ID), attrKey("k", "v", api.StatusCompleted, rec.ID)} {
		if err := kv.Remove(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, rec, api.StatusCompleted, nil); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{statusKey(api.StatusCompleted, rec.ID), scriptKey("s", api.StatusCompleted, rec.ID), attrKey("k", "v", api.StatusCompleted, rec.ID)} {
		if _, _, err := kv.Get(ctx, key); err != nil {
			t.Errorf("after rewrite, %s: %v", key, err)
		}
	}
}
