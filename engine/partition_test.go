package engine

import (
	"context"
	"errors"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
)

// A node with 3 partitions spreads its runs over them; listing merges the
// partitions newest first, by attribute too; each run reads back whole and
// is sealed in its partition; a node restarted with 1 partition on the same
// data dir still finds every run.
func TestPartitionedRuns(t *testing.T) {
	var execs atomic.Int64
	dir := t.TempDir()
	n := newTestNode(t, Options{Registry: testRegistry(&execs), DataDir: dir, Partitions: 3})
	var ids []string
	used := map[int]bool{}
	ctx := context.Background()
	for range 12 {
		r, err := n.Start(ctx, api.StartRequest{Script: testScript("def main(input):\n    return test.echo(input)\n"), Input: []byte(`7`), Attrs: map[string]string{"customer": "acme"}})
		if err != nil {
			t.Fatal(err)
		}
		end, err := n.Wait(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if end.Status != api.StatusCompleted || string(end.Result) != "7" {
			t.Fatalf("run %s: %s %s", end.ID, end.Status, end.Result)
		}
		ids = append(ids, end.ID)
		used[bus.RunPartition(end.ID)] = true
	}
	if len(used) < 2 {
		t.Fatalf("12 runs all in partitions %v", used)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	check := func(n *Node, what string) {
		t.Helper()
		for _, f := range []api.ListFilter{{Limit: 5}, {Limit: 5, Attrs: map[string]string{"customer": "acme"}}, {Limit: 100, Status: api.StatusCompleted}} {
			list, err := n.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			want := ids[:min(f.Limit, len(ids))]
			if len(list) != len(want) {
				t.Fatalf("%s: list %+v: %d runs, want %d", what, f, len(list), len(want))
			}
			for i := range want {
				if list[i].ID != want[i] {
					t.Fatalf("%s: list %+v: run %d is %s, want %s", what, f, i, list[i].ID, want[i])
				}
			}
		}
		for _, id := range ids {
			d, err := n.Get(ctx, id)
			if err != nil || len(d.Steps) != 1 || string(d.Run.Result) != "7" {
				t.Fatalf("%s: run %s: %v", what, id, err)
			}
		}
	}
	check(n, "3 partitions")
	if _, err := n.Get(ctx, "01JD4W6Q3Z8X5M2N7P9R0S1T2V-9"); !errors.Is(err, api.ErrUnknownRun) {
		t.Fatalf("a run in a partition nobody made: %v, want ErrUnknownRun", err)
	}
	// Each run is sealed, in its own partition's stream.
	for _, id := range ids {
		sealed := func() bool {
			subs, err := n.bus.JournalSubjects(ctx, bus.JournalFilter(id))
			return err == nil && len(subs) == 1
		}
		deadline := time.Now().Add(10 * time.Second)
		for !sealed() {
			if time.Now().After(deadline) {
				t.Fatalf("run %s (partition %d) was not sealed", id, bus.RunPartition(id))
			}
			time.Sleep(20 * time.Millisecond) // polling interval while the sealer works
		}
	}
	grace, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n.Close(grace)
	again := newTestNode(t, Options{Registry: testRegistry(&execs), DataDir: dir})
	check(again, "reopened with 1 partition")
	if recs, err := journal.NewStore(again.bus).Read(ctx, ids[0]); err != nil || len(recs) < 3 || recs[0].Kind != api.EntryStart || recs[len(recs)-1].Kind != api.EntryEnd {
		t.Fatalf("journal of %s after reopening: %d entries, %v", ids[0], len(recs), err)
	}
}
