package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// follow runs b.Follow in a goroutine, sending each message on the returned
// channel; the error channel receives what Follow returns.
func follow(ctx context.Context, b *Bus, filter string, keep func(Msg) bool) (<-chan Msg, <-chan error) {
	msgs := make(chan Msg, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- b.Follow(ctx, filter, func(m Msg) bool {
			msgs <- m
			return keep(m)
		})
	}()
	return msgs, errc
}

func next(t *testing.T, msgs <-chan Msg) Msg {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return Msg{}
	}
}

func result(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return within 5s")
		return nil
	}
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *Bus) journalConsumers(t *testing.T) int {
	t.Helper()
	s, err := b.journalStream(context.Background(), JournalPrefix)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Consumers
}

func appendEntry(t *testing.T, b *Bus, run, kind, key, data string) uint64 {
	t.Helper()
	seq, err := b.Append(context.Background(), JournalSubject(run, kind, key), run+"/"+kind+"/"+key, nil, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func TestFollow(t *testing.T) {
	b := openBus(t, false)
	run, other := uniqueRun(t), uniqueRun(t)+"o"
	var want []uint64
	want = append(want, appendEntry(t, b, run, "start", "", `{"n":0}`))
	appendEntry(t, b, other, "start", "", `{}`)
	want = append(want, appendEntry(t, b, run, "call", "1", `{"n":1}`))
	goroutines := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, errc := follow(ctx, b, JournalFilter(run), func(Msg) bool { return true })
	for i, kind := range []string{"start", "call"} {
		m := next(t, msgs)
		if m.Subject != JournalSubject(run, kind, map[bool]string{true: "1"}[kind == "call"]) || m.Seq != want[i] || string(m.Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("stored message %d = %+v (seq %d), want %s at seq %d", i, m, m.Seq, kind, want[i])
		}
	}
	// New entries arrive live; another run's do not.
	appendEntry(t, b, other, "call", "1", `{}`)
	seq := appendEntry(t, b, run, "result", "1", `{"n":2}`)
	if m := next(t, msgs); m.Seq != seq || m.Subject != JournalSubject(run, "result", "1") {
		t.Fatalf("live message = %+v, want result.1 at seq %d", m, seq)
	}
	cancel()
	if err := result(t, errc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow after cancel = %v, want context.Canceled", err)
	}
	eventually(t, "consumer deleted", func() bool { return b.journalConsumers(t) == 0 })
	eventually(t, "goroutines ended", func() bool { return runtime.NumGoroutine() <= goroutines })
}

func TestFollowStops(t *testing.T) {
	b := openBus(t, false)
	run := uniqueRun(t)
	for i := 1; i <= 3; i++ {
		appendEntry(t, b, run, "call", fmt.Sprint(i), "{}")
	}
	msgs, errc := follow(context.Background(), b, JournalFilter(run), func(m Msg) bool {
		return m.Subject != JournalSubject(run, "call", "2")
	})
	next(t, msgs)
	if m := next(t, msgs); m.Subject != JournalSubject(run, "call", "2") {
		t.Fatalf("second message %s", m.Subject)
	}
	if err := result(t, errc); err != nil {
		t.Fatalf("Follow after fn returned false = %v, want nil", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("%d messages delivered after fn returned false", len(msgs))
	}
	eventually(t, "consumer deleted", func() bool { return b.journalConsumers(t) == 0 })
}

func TestFollowClosedBus(t *testing.T) {
	b := openBus(t, false)
	run := uniqueRun(t)
	appendEntry(t, b, run, "start", "", "{}")
	msgs, errc := follow(context.Background(), b, JournalFilter(run), func(Msg) bool { return true })
	next(t, msgs)
	b.Close()
	if err := result(t, errc); !errors.Is(err, ErrClosed) {
		t.Fatalf("Follow on a closed bus = %v, want ErrClosed", err)
	}
}
