package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
)

// sideValue is the folded result of side value step id.
func sideValue(id string) api.ResultEntry {
	return api.ResultEntry{Step: id, Value: json.RawMessage(`"v` + id + `"`),
		Call: &api.CallEntry{Step: id, Builtin: "time.now", Args: json.RawMessage(`{}`), Reason: "co-located: side value"}}
}

// eachLayout runs test on a bus of each journal layout.
func eachLayout(t *testing.T, test func(t *testing.T, s *Store)) {
	for _, runLog := range []bool{false, true} {
		t.Run(fmt.Sprintf("runlog=%v", runLog), func(t *testing.T) {
			test(t, NewStore(bustest.Open(t, bus.Options{RunLog: runLog})))
		})
	}
}

// kinds returns "kind/key" of each record.
func kinds(recs []Record) string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Kind)+"/"+r.Key)
	}
	return strings.Join(out, " ")
}

// TestDeferredRunEndsSealed: a run that ends before its first output is
// written as one sealed part, in order, and never indexed; it reads, parses,
// follows and seals (nothing to do) like any ended run.
func TestDeferredRunEndsSealed(t *testing.T) {
	eachLayout(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		prime(t, s) // numbered from 1, a part needs no earlier message; a used stream is the usual case
		run := ulid.Make().String()
		var indexed atomic.Int32
		if !s.Defer(run, api.StartEntry{Run: run, Script: "t"}, func(context.Context) error { indexed.Add(1); return nil }, nil) {
			t.Fatal("Defer refused a small start entry")
		}
		for i := 1; i <= 3; i++ {
			if _, err := s.AppendResult(ctx, run, sideValue(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		if msgs, err := s.b.Read(ctx, bus.JournalFilter(run)); err != nil || len(msgs) != 0 {
			t.Fatalf("a deferred run wrote %d messages (%v) before its end", len(msgs), err)
		}
		p, sealed, err := s.AppendEnd(run, api.EndEntry{Status: api.StatusCompleted, Steps: 3})
		if err != nil || !sealed {
			t.Fatalf("AppendEnd: sealed %v, %v", sealed, err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		msgs, err := s.b.Read(ctx, bus.JournalFilter(run))
		if err != nil || len(msgs) != 1 || !isPart(run, msgs[0].Subject) {
			t.Fatalf("the ended run is %d messages (%v), want one sealed part", len(msgs), err)
		}
		recs := mustRead(t, s, run)
		if got, want := kinds(recs), "start/ result/1 result/2 result/3 end/"; got != want {
			t.Fatalf("entries %s, want %s", got, want)
		}
		for i, r := range recs {
			if r.Seq != uint64(i+1) {
				t.Fatalf("entry %d has sequence %d, want %d", i, r.Seq, i+1)
			}
		}
		if j, err := Parse(Entries(recs)); err != nil || j.Calls["2"] == nil || string(j.Results["3"].Value) != `"v3"` || j.End == nil {
			t.Fatalf("parse: %v %+v", err, j)
		}
		var followed []Record
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.Follow(fctx, run, func(r Record) bool { followed = append(followed, r); return r.Kind != api.EntryEnd }); err != nil || kinds(followed) != kinds(recs) {
			t.Fatalf("Follow gave %s (%v), want %s", kinds(followed), err, kinds(recs))
		}
		var res api.ResultEntry
		if err := s.Get(ctx, run, api.EntryResult, "2", &res); err != nil || string(res.Value) != `"v2"` {
			t.Fatalf("Get of a result in the part: %v %+v", err, res)
		}
		if did, err := s.Seal(ctx, run); err != nil || did {
			t.Fatalf("Seal of a run ended sealed: %v %v, want nothing to do", did, err)
		}
		if indexed.Load() != 0 {
			t.Fatal("a run that ended before its first output was indexed as running")
		}
	})
}

// prime writes an entry of another run, so that the stream is not empty.
func prime(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Append(context.Background(), ulid.Make().String(), api.EntryStart, "", api.StartEntry{Script: "other"}); err != nil {
		t.Fatal(err)
	}
}

// TestDeferredRunCommits: the first output commits a deferred run (its
// entries written in order, and the run indexed) before the output is
// journaled; so do a call appended asynchronously, an explicit Commit
// (concurrent callers wait for the one commit), the bounds, and time.
func TestDeferredRunCommits(t *testing.T) {
	eachLayout(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		// defer starts a deferred run with n side values; index records
		// what the journal held when the run was indexed.
		deferRun := func(n int) (run string, index *[]string) {
			run = ulid.Make().String()
			index = new([]string)
			var once sync.Mutex
			if !s.Defer(run, api.StartEntry{Run: run, Script: "t"}, func(ctx context.Context) error {
				once.Lock()
				defer once.Unlock()
				*index = append(*index, "indexed")
				return nil
			}, func(err error) { t.Errorf("failed(%v) called", err) }) {
				t.Fatal("Defer refused a small start entry")
			}
			for i := 1; i <= n; i++ {
				if _, err := s.AppendResult(ctx, run, sideValue(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			return run, index
		}
		t.Run("tag", func(t *testing.T) {
			run, index := deferRun(2)
			if err := s.Append(ctx, run, api.EntryTag, "1", api.TagEntry{Attrs: map[string]string{"k": "v"}}); err != nil {
				t.Fatal(err)
			}
			if got, want := kinds(mustRead(t, s, run)), "start/ result/1 result/2 tag/1"; got != want || len(*index) != 1 {
				t.Fatalf("entries %s, indexed %v; want %s, indexed once", got, *index, want)
			}
			// Once committed, the run is journaled as any other.
			if _, err := s.AppendResult(ctx, run, sideValue("3")); err != nil {
				t.Fatal(err)
			}
			p, sealed, err := s.AppendEnd(run, api.EndEntry{Status: api.StatusCompleted})
			if err != nil || sealed {
				t.Fatalf("AppendEnd of a committed run: sealed %v, %v", sealed, err)
			}
			if err := p.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := kinds(mustRead(t, s, run)), "start/ result/1 result/2 tag/1 result/3 end/"; got != want {
				t.Fatalf("entries %s, want %s", got, want)
			}
		})
		t.Run("call", func(t *testing.T) {
			run, index := deferRun(1)
			u := s.Unacked(run)
			if err := u.Append(api.EntryCall, "2", api.CallEntry{Step: "2", Builtin: "http.get"}); err != nil {
				t.Fatal(err)
			}
			if err := u.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := kinds(mustRead(t, s, run)), "start/ result/1 call/2"; got != want || len(*index) != 1 {
				t.Fatalf("entries %s, indexed %v; want %s, indexed once", got, *index, want)
			}
		})
		t.Run("concurrent commits", func(t *testing.T) {
			run, index := deferRun(3)
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = s.Commit(ctx, run) }()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			// Every Commit returned after the entries were stored.
			if got, want := kinds(mustRead(t, s, run)), "start/ result/1 result/2 result/3"; got != want || len(*index) != 1 {
				t.Fatalf("entries %s, indexed %v; want %s, indexed once", got, *index, want)
			}
		})
		t.Run("bound", func(t *testing.T) {
			run, index := deferRun(deferredEntries + 1)
			if recs := mustRead(t, s, run); len(recs) != deferredEntries+2 || len(*index) != 1 {
				t.Fatalf("%d entries, indexed %v, after %d side values: want every one written, indexed once", len(recs), *index, deferredEntries+1)
			}
		})
		t.Run("time", func(t *testing.T) {
			run, _ := deferRun(1)
			deadline := time.Now().Add(10 * time.Second)
			for len(mustRead(t, s, run)) != 2 {
				if time.Now().After(deadline) {
					t.Fatalf("a deferred run did not commit on its own within %v", 10*time.Second)
				}
				time.Sleep(10 * time.Millisecond) // polling interval
			}
		})
		t.Run("drop", func(t *testing.T) {
			run, index := deferRun(1)
			s.Drop(run)
			if err := s.Commit(ctx, run); err != nil {
				t.Fatal(err)
			}
			if recs := mustRead(t, s, run); len(recs) != 0 || len(*index) != 0 {
				t.Fatalf("a dropped run left %d entries, indexed %v", len(recs), *index)
			}
		})
		t.Run("large start", func(t *testing.T) {
			run := ulid.Make().String()
			big := json.RawMessage(`"` + strings.Repeat("x", deferredBytes) + `"`)
			if s.Defer(run, api.StartEntry{Run: run, Input: big}, func(context.Context) error { return nil }, nil) {
				t.Fatal("Defer kept a start entry over its bound")
			}
		})
		t.Run("index fails", func(t *testing.T) {
			run := ulid.Make().String()
			s.Defer(run, api.StartEntry{Run: run}, func(context.Context) error { return fmt.Errorf("index down") }, nil)
			err := s.Commit(ctx, run)
			if err == nil || !strings.Contains(err.Error(), "index down") || !strings.Contains(err.Error(), run) {
				t.Fatalf("Commit with a failing index: %v, want the index's error naming the run", err)
			}
			// The failure stays the run's: nothing it does next goes through.
			if err := s.Commit(ctx, run); err == nil || !strings.Contains(err.Error(), "index down") {
				t.Fatalf("a second Commit after a failed one: %v, want the same failure", err)
			}
			if err := s.Append(ctx, run, api.EntryTag, "1", api.TagEntry{}); err == nil {
				t.Fatal("an append after a failed commit went through")
			}
			if _, _, err := s.AppendEnd(run, api.EndEntry{Status: api.StatusCompleted}); err == nil {
				t.Fatal("the end after a failed commit went through")
			}
			s.Drop(run)
			if err := s.Commit(ctx, run); err != nil {
				t.Fatalf("Commit after Drop: %v", err)
			}
		})
		t.Run("a commit under way is waited for", func(t *testing.T) {
			run := ulid.Make().String()
			entered, release := make(chan struct{}), make(chan struct{})
			var released atomic.Bool
			s.Defer(run, api.StartEntry{Run: run}, func(context.Context) error {
				close(entered)
				<-release
				return nil
			}, nil)
			first := make(chan error, 1)
			go func() { first <- s.Commit(ctx, run) }()
			<-entered
			second := make(chan bool, 1)
			for _, write := range []func() error{
				func() error { return s.Commit(ctx, run) },
				func() error { _, err := s.AppendResult(ctx, run, sideValue("1")); return err },
			} {
				go func() {
					err := write()
					second <- err == nil && released.Load()
				}()
			}
			time.Sleep(20 * time.Millisecond) // lets the other callers arrive while the commit is under way
			released.Store(true)
			close(release)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if !<-second {
					t.Fatal("a caller went on before the commit under way was done (or failed)")
				}
			}
			if got, want := kinds(mustRead(t, s, run)), "start/ result/1"; got != want {
				t.Fatalf("entries %s, want %s (the side value after the start)", got, want)
			}
		})
	})
}

// TestSealerSkipsWholeRuns: a run that ended on one subject (a sealed part
// written at its end, or its log) is not queued for sealing; others are.
func TestSealerSkipsWholeRuns(t *testing.T) {
	s := NewStore(bustest.Open(t, bus.Options{RunLog: true}))
	ctx := context.Background()
	prime(t, s)
	z := s.NewSealer(SealerOptions{})
	direct := ulid.Make().String()
	s.Defer(direct, api.StartEntry{Run: direct}, func(context.Context) error { return nil }, nil)
	if p, _, err := s.AppendEnd(direct, api.EndEntry{Status: api.StatusCompleted}); err != nil || p.Wait(ctx) != nil {
		t.Fatal(err)
	}
	logged := ulid.Make().String()
	for _, kind := range []api.EntryKind{api.EntryStart, api.EntryEnd} {
		p, err := s.AppendAsync(logged, kind, "", map[string]string{})
		if err == nil {
			err = p.Wait(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	z.Add(direct)
	z.Add(logged)
	if len(z.queue) != 0 {
		t.Fatalf("%d runs ended on one subject queued for sealing", len(z.queue))
	}
	z.Add(ulid.Make().String())
	if len(z.queue) != 1 {
		t.Fatal("a run not ended by this store was not queued")
	}
}
