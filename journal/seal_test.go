package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
)

// writeRun journals a run of steps results (values of size bytes), ended
// unless live.
func writeRun(t *testing.T, s *Store, steps, size int, live bool) string {
	t.Helper()
	ctx := context.Background()
	run := ulid.Make().String()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Append(ctx, run, api.EntryStart, "", api.StartEntry{Run: run, Script: "t", Input: json.RawMessage(`{"k":"quote \" and \\"}`)}))
	must(s.Append(ctx, run, api.EntryTag, "1", api.TagEntry{Attrs: map[string]string{"customer": "acme"}}))
	value, _ := json.Marshal(strings.Repeat("v", size))
	for i := 1; i <= steps; i++ {
		id := fmt.Sprint(i)
		if i%2 == 0 {
			must(s.Append(ctx, run, api.EntryCall, id, api.CallEntry{Step: id, Builtin: "t.echo", Args: json.RawMessage(`1`)}))
		}
		_, err := s.AppendResult(ctx, run, api.ResultEntry{Step: id, Value: value, Node: "n1"})
		must(err)
	}
	_, err := s.Create(ctx, run, api.EntryPatch, "fix-1", api.PatchEntry{Value: true}, &api.PatchEntry{})
	must(err)
	if !live {
		must(s.Append(ctx, run, api.EntryEnd, "", api.EndEntry{Status: api.StatusCompleted, Steps: steps}))
	}
	return run
}

// subjects lists the journal subjects of run that hold a message.
func subjects(t *testing.T, b *bus.Bus, run string) []string {
	t.Helper()
	subs, err := b.JournalSubjects(context.Background(), bus.JournalFilter(run))
	if err != nil {
		t.Fatal(err)
	}
	return subs
}

func mustRead(t *testing.T, s *Store, run string) []Record {
	t.Helper()
	recs, err := s.Read(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func sameRecords(t *testing.T, what string, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || got[i].Kind != want[i].Kind || got[i].Key != want[i].Key || string(got[i].Data) != string(want[i].Data) {
			t.Fatalf("%s: entry %d is %d %s %s %s, want %d %s %s %s", what, i,
				got[i].Seq, got[i].Kind, got[i].Key, got[i].Data, want[i].Seq, want[i].Kind, want[i].Key, want[i].Data)
		}
	}
}

func TestSeal(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	s := NewStore(b)
	ctx := context.Background()
	run := writeRun(t, s, 20, 10, false)
	live := writeRun(t, s, 3, 10, true)
	before := mustRead(t, s, run)

	if _, err := s.Seal(ctx, live); !errors.Is(err, ErrNotEnded) {
		t.Fatalf("sealing a live run: %v, want ErrNotEnded", err)
	}
	if sealed, err := s.Seal(ctx, run); err != nil || !sealed {
		t.Fatalf("seal: %v %v", sealed, err)
	}
	if subs := subjects(t, b, run); len(subs) != 1 || subs[0] != bus.JournalRunPrefix(run)+"sealed.0" {
		t.Fatalf("subjects after sealing: %v, want the one part", subs)
	}
	sameRecords(t, "read after sealing", mustRead(t, s, run), before)
	if len(subjects(t, b, live)) != 2+3+1+1 {
		t.Fatalf("the live run was touched: %v", subjects(t, b, live))
	}
	// Entries are still found one by one, and sealing again changes nothing.
	var end api.EndEntry
	if err := s.Get(ctx, run, api.EntryEnd, "", &end); err != nil || end.Steps != 20 {
		t.Fatalf("end entry of a sealed run: %+v %v", end, err)
	}
	if res, err := s.Result(ctx, run, "7"); err != nil || res.Node != "n1" {
		t.Fatalf("result of a sealed run: %+v %v", res, err)
	}
	if err := s.Get(ctx, run, api.EntryResult, "99", &api.ResultEntry{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing entry of a sealed run: %v, want ErrNotFound", err)
	}
	if sealed, err := s.Seal(ctx, run); err != nil || sealed {
		t.Fatalf("sealing again: %v %v, want a no-op", sealed, err)
	}
	// A late writer to a subject sealing emptied does not change what the
	// run reads: the first entry stands.
	if err := s.Append(ctx, run, api.EntryResult, "3", api.ResultEntry{Step: "3", Value: json.RawMessage(`"late"`)}); !errors.Is(err, ErrExists) {
		t.Fatalf("a late write within the duplicate window: %v, want ErrExists", err) // its message id is known
	}
	if _, err := b.Append(ctx, subject(run, api.EntryResult, "3"), "other-id", nil, []byte(`{"step":"3","value":"late"}`)); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "read after a late write", mustRead(t, s, run), before)
	// Follow delivers the same entries.
	var followed []Record
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Follow(fctx, run, func(r Record) bool { followed = append(followed, r); return r.Kind != api.EntryEnd }); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "follow after sealing", followed, before)
}

// A long run's journal is sealed into several parts, each under the bus's
// largest message.
func TestSealParts(t *testing.T) {
	b := bustest.Open(t, bus.Options{MaxPayload: 64 << 10})
	s := NewStore(b)
	run := writeRun(t, s, 40, 5000, false) // 200 kB of values
	before := mustRead(t, s, run)
	if sealed, err := s.Seal(context.Background(), run); err != nil || !sealed {
		t.Fatalf("seal: %v %v", sealed, err)
	}
	if subs := subjects(t, b, run); len(subs) < 4 {
		t.Fatalf("subjects after sealing: %v, want several parts", subs)
	}
	sameRecords(t, "read after sealing", mustRead(t, s, run), before)
}

// A seal interrupted after writing its parts, before purging, reads the
// same, and a later seal finishes it. Two nodes sealing at once agree.
func TestSealInterruptedAndConcurrent(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	s := NewStore(b)
	ctx := context.Background()
	run := writeRun(t, s, 5, 10, false)
	before := mustRead(t, s, run)
	last := before[len(before)-1].Seq
	part := s.packParts(before)[0]
	if _, err := b.AppendAfter(ctx, subject(run, sealedKind, "0"), msgID(run, sealedKind, "0"), bus.JournalFilter(run), last, part); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "read between parts and purge", mustRead(t, s, run), before)
	if _, err := b.AppendAfter(ctx, subject(run, sealedKind, "1"), "x", bus.JournalFilter(run), last, part); !errors.Is(err, bus.ErrConflict) {
		t.Fatalf("a part written after another's: %v, want ErrConflict", err)
	}
	if _, err := s.Seal(ctx, run); err != nil {
		t.Fatal(err)
	}
	if subs := subjects(t, b, run); len(subs) != 1 {
		t.Fatalf("subjects after finishing the seal: %v", subs)
	}
	sameRecords(t, "read after finishing the seal", mustRead(t, s, run), before)

	run = writeRun(t, s, 30, 10, false)
	before = mustRead(t, s, run)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Seal(ctx, run); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if subs := subjects(t, b, run); len(subs) != 1 {
		t.Fatalf("subjects after concurrent seals: %v", subs)
	}
	sameRecords(t, "read after concurrent seals", mustRead(t, s, run), before)
}

// A run sealed while it is followed goes on where it was, each entry once.
func TestFollowAcrossSeal(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	s := NewStore(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run := writeRun(t, s, 10, 10, true)
	release := make(chan struct{})
	var followed []Record
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(ctx, run, func(r Record) bool {
			if len(followed) == 0 {
				<-release
			}
			followed = append(followed, r)
			return r.Kind != api.EntryEnd
		})
	}()
	if err := s.Append(ctx, run, api.EntryEnd, "", api.EndEntry{Status: api.StatusCompleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seal(ctx, run); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "followed across the seal", followed, mustRead(t, s, run))
}

// A sweep seals the ended runs nobody sealed, and leaves live ones.
func TestSweep(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	s := NewStore(b)
	ended := []string{writeRun(t, s, 3, 10, false), writeRun(t, s, 3, 10, false)}
	live := writeRun(t, s, 3, 10, true)
	z := s.NewSealer(SealerOptions{})
	if n := z.Sweep(context.Background()); n != 2 {
		t.Fatalf("sweep sealed %d runs, want 2", n)
	}
	for _, run := range ended {
		if subs := subjects(t, b, run); len(subs) != 1 {
			t.Fatalf("run %s after the sweep: %v", run, subs)
		}
	}
	if len(subjects(t, b, live)) == 1 {
		t.Fatal("the sweep sealed a live run")
	}
	// Run seals what it is given, and drains its queue when stopped.
	run := writeRun(t, s, 3, 10, false)
	ctx, cancel := context.WithCancel(context.Background())
	z.Add(run)
	go z.Run(ctx, 5*time.Second)
	cancel()
	z.Wait()
	if subs := subjects(t, b, run); len(subs) != 1 {
		t.Fatalf("a run added before stopping: %v", subs)
	}
}

// BenchmarkSeal measures sealing one ended run of 10 steps (read it, write
// its part, purge its entries), on a journal holding 20,000 other runs'
// entries, beside reading the run through a consumer (Store.Read) and with
// batched direct gets (what Seal reads with).
func BenchmarkSeal(b *testing.B) {
	bu := bustest.Open(b, bus.Options{})
	s := NewStore(bu)
	ctx := context.Background()
	data := []byte(`{"step":"1","value":1,"node":"n1","attempts":1}`)
	write := func(n int) []string {
		var ids []string
		for range n {
			run := ulid.Make().String()
			var pend []*bus.Pending
			for i := range 10 {
				p, err := bu.AppendAsync(bus.JournalSubject(run, "result", fmt.Sprint(i)), run+fmt.Sprint(i), nil, data)
				if err != nil {
					b.Fatal(err)
				}
				pend = append(pend, p)
			}
			p, _ := bu.AppendAsync(bus.JournalSubject(run, "end", ""), run+"end", nil, []byte(`{"status":"completed"}`))
			for _, p := range append(pend, p) {
				if err := p.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			ids = append(ids, run)
		}
		return ids
	}
	write(20_000)
	runs := write(2000)
	i := 0
	next := func() string { i++; return runs[i%len(runs)] }
	b.Run("read-consumer", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Read(ctx, next()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read-direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := bu.ReadDirect(ctx, bus.JournalFilter(next())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("seal", func(b *testing.B) {
		if b.N > len(runs) {
			runs = append(runs, write(b.N-len(runs))...)
		}
		b.ResetTimer()
		for j := range b.N {
			if _, err := s.Seal(ctx, runs[j]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
