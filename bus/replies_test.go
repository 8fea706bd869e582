package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestReadDirectSharesOneSubscription: ReadDirect reads every entry of a run,
// from many goroutines at once, each getting its own run's entries, and the
// server makes no subscription for the reads (one shared subscription
// carries every answer).
func TestReadDirectSharesOneSubscription(t *testing.T) {
	b := openBus(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const runs, entries = 16, 40
	base := uniqueRun(t)
	for r := range runs {
		run := fmt.Sprintf("%s%d", base, r)
		for i := range entries {
			if _, err := b.Append(ctx, JournalSubject(run, "result", fmt.Sprint(i)), fmt.Sprint(run, "/", i), nil, []byte(fmt.Sprintf(`{"run":%d,"i":%d}`, r, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.ReadDirect(ctx, JournalFilter(base+"0")); err != nil { // the shared subscription is made
		t.Fatal(err)
	}
	inserts := func() uint64 {
		sz, err := b.ns.Subsz(nil)
		if err != nil {
			t.Fatal(err)
		}
		return sz.NumInserts
	}
	before := inserts()
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := fmt.Sprintf("%s%d", base, r)
			for range 20 {
				msgs, err := b.ReadDirect(ctx, JournalFilter(run))
				if err != nil {
					errs <- err
					return
				}
				if len(msgs) != entries {
					errs <- fmt.Errorf("run %d: %d entries, want %d", r, len(msgs), entries)
					return
				}
				for _, m := range msgs {
					if want := fmt.Sprintf(`{"run":%d,`, r); string(m.Data[:len(want)]) != want {
						errs <- fmt.Errorf("run %d got another run's entry: %s", r, m.Data)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := inserts() - before; n > 0 {
		t.Fatalf("%d subscriptions made on the server for %d reads", n, runs*20)
	}
}

// TestReplyWaiterClosedEarly: a reader that gives up before all its answers
// arrive (its context ended) does not hold up the answers of later requests.
func TestReplyWaiterClosedEarly(t *testing.T) {
	b := openBus(t, false)
	w, err := b.multi.wait(b.nc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 { // more than the waiter's buffer: delivery would block on it
		if err := b.nc.Publish(w.subject, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	w.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run := uniqueRun(t)
	if _, err := b.Append(ctx, JournalSubject(run, "start", ""), run+"/start", nil, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	msgs, err := b.ReadDirect(ctx, JournalFilter(run))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("read after an abandoned waiter: %d entries, %v", len(msgs), err)
	}
}
