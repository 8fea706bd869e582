package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/bus"
)

// seedRun indexes a run the way a coordinator does: started with attrs, then
// moved through statuses, each write with the previous status.
func seedRun(t testing.TB, n *Node, rec Run, statuses ...string) {
	t.Helper()
	ctx := context.Background()
	rec.Status = StatusRunning
	if err := n.indexRun(ctx, rec, "", rec.Attrs); err != nil {
		t.Fatal(err)
	}
	for _, s := range statuses {
		prev := rec.Status
		rec.Status = s
		if err := n.indexRun(ctx, rec, prev, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func idAt(t time.Time, entropy *rand.Rand) string {
	return ulid.MustNew(ulid.Timestamp(t), entropy).String()
}

func ids(runs []Run) []string {
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
	n := newTestNode(t, Options{})
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
		{"old", 72 * time.Hour, "billing", map[string]string{"customer": "acme"}, []string{StatusCompleted}},
		{"done", 2 * time.Hour, "billing", map[string]string{"customer": "acme", "email": "ann.lee@example.com"}, []string{StatusCompleted}},
		{"failed", 90 * time.Minute, "billing", map[string]string{"customer": "acme", "note": "two words. a dot"}, []string{StatusFailed}},
		{"globex", 80 * time.Minute, "billing", map[string]string{"customer": "globex"}, []string{StatusCompleted}},
		{"blocked", 40 * time.Minute, "ship it", map[string]string{"customer": "acme", "region": "eu"}, []string{StatusBlocked}},
		{"resumed", 30 * time.Minute, "ship it", map[string]string{"customer": "acme", "region": "eu"}, []string{StatusBlocked, StatusRunning, StatusFailed}},
		{"cancelled", 20 * time.Minute, "billing", map[string]string{"customer": "initech"}, []string{StatusCancelled}},
		{"running", 10 * time.Minute, "ship it", map[string]string{"customer": "acme", "region": "us"}, nil},
		{"plain", 5 * time.Minute, "billing", nil, []string{StatusCompleted}},
	}
	id := map[string]string{}
	for _, r := range runs {
		id[r.name] = idAt(now.Add(-r.ago), entropy)
		seedRun(t, n, Run{ID: id[r.name], Script: r.script, Hash: "h", Attrs: r.attrs, Coordinator: "n1", Started: now.Add(-r.ago)}, r.statuses...)
	}
	// A tag after start adds an attribute, and a value that changes leaves the
	// old one behind in the index.
	tagged := Run{ID: idAt(now.Add(-3*time.Minute), entropy), Script: "billing", Status: StatusRunning, Attrs: map[string]string{"customer": "umbrella"}}
	id["tagged"] = tagged.ID
	if err := n.indexRun(ctx, tagged, "", tagged.Attrs); err != nil {
		t.Fatal(err)
	}
	tagged.Attrs = map[string]string{"customer": "hooli", "tier": "gold"}
	if err := n.indexRun(ctx, tagged, StatusRunning, tagged.Attrs); err != nil {
		t.Fatal(err)
	}
	tagged.Status = StatusCompleted
	if err := n.indexRun(ctx, tagged, StatusRunning, nil); err != nil {
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
		filter ListFilter
		want   []string
	}{
		{"all", ListFilter{}, want("tagged", "plain", "running", "cancelled", "resumed", "blocked", "globex", "failed", "done", "old")},
		{"limit", ListFilter{Limit: 3}, want("tagged", "plain", "running")},
		{"attr", ListFilter{Attrs: map[string]string{"customer": "acme"}}, want("running", "resumed", "blocked", "failed", "done", "old")},
		{"attr limit", ListFilter{Attrs: map[string]string{"customer": "acme"}, Limit: 2}, want("running", "resumed")},
		{"attr and status", ListFilter{Attrs: map[string]string{"customer": "acme"}, Status: StatusFailed}, want("resumed", "failed")},
		{"attr and running", ListFilter{Attrs: map[string]string{"customer": "acme"}, Status: StatusRunning}, want("running")},
		{"attr and blocked", ListFilter{Attrs: map[string]string{"customer": "acme"}, Status: StatusBlocked}, want("blocked")},
		{"attrs and", ListFilter{Attrs: map[string]string{"customer": "acme", "region": "eu"}}, want("resumed", "blocked")},
		{"attrs and none", ListFilter{Attrs: map[string]string{"customer": "globex", "region": "eu"}}, want()},
		{"attr since", ListFilter{Attrs: map[string]string{"customer": "acme"}, Since: time.Hour}, want("running", "resumed", "blocked")},
		{"attr status since", ListFilter{Attrs: map[string]string{"customer": "acme"}, Status: StatusFailed, Since: time.Hour}, want("resumed")},
		{"email", ListFilter{Attrs: map[string]string{"email": "ann.lee@example.com"}}, want("done")},
		{"spaces and dots", ListFilter{Attrs: map[string]string{"note": "two words. a dot"}}, want("failed")},
		{"prefix of a value", ListFilter{Attrs: map[string]string{"note": "two words"}}, want()},
		{"unknown attr", ListFilter{Attrs: map[string]string{"customer": "nobody"}}, want()},
		{"tag added", ListFilter{Attrs: map[string]string{"tier": "gold"}}, want("tagged")},
		{"tag changed", ListFilter{Attrs: map[string]string{"customer": "hooli"}, Status: StatusCompleted}, want("tagged")},
		{"tag replaced", ListFilter{Attrs: map[string]string{"customer": "umbrella"}}, want()},
		{"completed", ListFilter{Status: StatusCompleted}, want("tagged", "plain", "globex", "done", "old")},
		{"failed", ListFilter{Status: StatusFailed}, want("resumed", "failed")},
		{"running", ListFilter{Status: StatusRunning}, want("running")},
		{"blocked", ListFilter{Status: StatusBlocked}, want("blocked")},
		{"cancelled", ListFilter{Status: StatusCancelled}, want("cancelled")},
		{"status since", ListFilter{Status: StatusCompleted, Since: 100 * time.Minute}, want("tagged", "plain", "globex")},
		{"since", ListFilter{Since: 25 * time.Minute}, want("tagged", "plain", "running", "cancelled")},
		{"since nothing", ListFilter{Since: time.Minute}, want()},
		{"script", ListFilter{Script: "ship it"}, want("running", "resumed", "blocked")},
		{"script and status", ListFilter{Script: "billing", Status: StatusCompleted, Limit: 2}, want("tagged", "plain")},
		{"script and attr", ListFilter{Script: "billing", Attrs: map[string]string{"customer": "acme"}}, want("failed", "done", "old")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := n.List(ctx, tt.filter)
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
			for _, x := range f.indexes() {
				got, err := n.listStoredKeys(ctx, f, x.filter, sinceID)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(got), tt.want) {
					t.Errorf("all keys of %s: %v, want %v", x.filter, ids(got), tt.want)
				}
				// Reading the newest keys, a revision at a time at first.
				got, err = n.listNewestKeys(ctx, f, x.filter, sinceID, 1)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(got), tt.want) {
					t.Errorf("newest keys of %s: %v, want %v", x.filter, ids(got), tt.want)
				}
			}
			// So does reading the newest part of the bucket, a window at a time.
			got, err = n.list(ctx, f, 1, false)
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
	n := newTestNode(t, Options{})
	ctx := context.Background()
	entropy := ulid.Monotonic(rand.New(rand.NewSource(2)), 0)
	// Older runs, written first.
	for i := range 200 {
		seedRun(t, n, Run{ID: idAt(time.Now().Add(-48*time.Hour+time.Duration(i)*time.Minute), rand.New(rand.NewSource(int64(i)))), Script: "old", Attrs: map[string]string{"n": fmt.Sprint(i)}}, StatusCompleted)
	}
	var recent []string
	for i := range 300 {
		rec := Run{ID: ulid.MustNew(ulid.Now(), entropy).String(), Script: "new", Attrs: map[string]string{"n": fmt.Sprint(i)}}
		status := StatusCompleted
		if i%10 == 0 {
			status = StatusFailed
		}
		seedRun(t, n, rec, status)
		recent = append(recent, rec.ID)
	}
	slices.Reverse(recent)
	got, err := n.list(ctx, ListFilter{Limit: 20}, firstWindow, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), recent[:20]) {
		t.Errorf("newest 20 = %v, want %v", ids(got), recent[:20])
	}
	got, err = n.List(ctx, ListFilter{Limit: 250, Script: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), recent[:250]) {
		t.Errorf("newest 250 = %v, want %v", ids(got), recent[:250])
	}
	got, err = n.List(ctx, ListFilter{Limit: 5, Status: StatusFailed})
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
	got, err = n.listNewestKeys(ctx, ListFilter{Limit: 5, Status: StatusFailed}, "s.failed.*", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), wantFailed) {
		t.Errorf("newest failed keys = %v, want %v", ids(got), wantFailed)
	}
}

func TestIndexRunAcknowledged(t *testing.T) {
	n := newTestNode(t, Options{})
	ctx := context.Background()
	rec := Run{ID: ulid.Make().String(), Script: "s", Status: StatusRunning, Attrs: map[string]string{"k": "v"}}
	if err := n.indexRun(ctx, rec, "", rec.Attrs); err != nil {
		t.Fatal(err)
	}
	// Once indexRun returns, every key is readable.
	kv := n.bus.Bucket(bus.RunsBucket)
	for _, key := range []string{recordKey(rec.ID), statusKey(StatusRunning, rec.ID), scriptKey("s", StatusRunning, rec.ID), attrKey("k", "v", StatusRunning, rec.ID)} {
		if _, _, err := kv.Get(ctx, key); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	rec.Status = StatusCompleted
	if err := n.indexRun(ctx, rec, StatusRunning, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kv.Get(ctx, statusKey(StatusRunning, rec.ID)); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("old status key: err = %v, want ErrNotFound", err)
	}
	got, err := n.record(ctx, rec.ID)
	if err != nil || got.Status != StatusCompleted {
		t.Fatalf("record = %+v, %v", got, err)
	}
	// A rewrite with the same status (park, adopt, pin) writes every key of
	// the status again, so that they expire with the record.
	for _, key := range []string{statusKey(StatusCompleted, rec.ID), attrKey("k", "v", StatusCompleted, rec.ID)} {
		if err := kv.Remove(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.indexRun(ctx, rec, StatusCompleted, nil); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{statusKey(StatusCompleted, rec.ID), scriptKey("s", StatusCompleted, rec.ID), attrKey("k", "v", StatusCompleted, rec.ID)} {
		if _, _, err := kv.Get(ctx, key); err != nil {
			t.Errorf("after rewrite, %s: %v", key, err)
		}
	}
}

func TestParseListQueryStatuses(t *testing.T) {
	for _, s := range []string{StatusRunning, StatusCompleted, StatusFailed, StatusCancelled, StatusBlocked} {
		f, err := ParseListQuery(map[string][]string{"status": {s}})
		if err != nil || f.Status != s {
			t.Errorf("status %s: %+v, %v", s, f, err)
		}
	}
	if _, err := ParseListQuery(map[string][]string{"status": {"done"}}); !errors.Is(err, ErrBadInput) {
		t.Errorf("status done: err = %v, want ErrBadInput", err)
	}
}
