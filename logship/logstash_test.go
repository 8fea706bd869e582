package logship

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func newShipper(t testing.TB, cfg Config, opts Options) *Shipper {
	t.Helper()
	if opts.Backoff == nil {
		opts.Backoff = fast
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

func TestLogstashLinesInOrder(t *testing.T) {
	ls := newLogstashStandIn(t, "127.0.0.1:0", true)
	s := newShipper(t, Config{Logstash: LogstashConfig{Address: ls.addr()}}, Options{})
	log := zerolog.New(zerolog.MultiLevelWriter(s)).With().Timestamp().Str("node", "n1").Logger()
	const n = 5000
	for i := range n {
		log.Info().Int("i", i).Str("run", "r1").Msg("step done")
	}
	eventually(t, "every line at Logstash", func() bool { return ls.count() == n && s.Stats().Logstash.Shipped == n })
	lines, bad := ls.received()
	if len(bad) > 0 {
		t.Fatalf("%d lines are not JSON objects, the first: %q", len(bad), bad[0])
	}
	for i, line := range lines {
		var got struct {
			I       int    `json:"i"`
			Node    string `json:"node"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil || got.I != i || got.Node != "n1" || got.Message != "step done" {
			t.Fatalf("line %d: %q (%v)", i, line, err)
		}
	}
	st := s.Stats().Logstash
	if !st.Enabled || !st.Connected || st.Shipped != n || st.Dropped != 0 || st.Queued != 0 {
		t.Errorf("stats %+v, want %d shipped, connected", st, n)
	}
}

func TestLogstashDownThenUp(t *testing.T) {
	addr := freeAddr(t)
	s := newShipper(t, Config{Logstash: LogstashConfig{Address: addr}, Buffer: 50}, Options{})
	for i := range 80 {
		fmt.Fprintf(s, `{"level":"info","i":%d}`+"\n", i)
	}
	eventually(t, "the connection refused", func() bool { return s.Stats().Logstash.LastError != "" })
	st := s.Stats().Logstash
	if st.Connected || st.Queued != 50 || st.Dropped != 30 || st.Shipped != 0 {
		t.Fatalf("Logstash down: stats %+v, want 50 queued, 30 dropped", st)
	}
	if !strings.Contains(st.LastError, "refused") {
		t.Errorf("LastError %q, want the connection refused", st.LastError)
	}

	ls := newLogstashStandIn(t, addr, true)
	eventually(t, "the queued lines at Logstash", func() bool { return ls.count() == 50 })
	lines, _ := ls.received()
	for i, line := range lines {
		if want := fmt.Sprintf(`{"level":"info","i":%d}`, i); line != want {
			t.Fatalf("line %d: %q, want %q", i, line, want)
		}
	}
	fmt.Fprint(s, `{"level":"info","i":80}`+"\n")
	eventually(t, "a new line at Logstash", func() bool { return ls.count() == 51 && s.Stats().Logstash.Shipped == 51 })
	st = s.Stats().Logstash
	if !st.Connected || st.Shipped != 51 || st.Dropped != 30 || st.Queued != 0 {
		t.Errorf("Logstash up: stats %+v, want 51 shipped, 30 dropped", st)
	}
}

func TestLogstashHangsUp(t *testing.T) {
	ls := newLogstashStandIn(t, "127.0.0.1:0", true)
	s := newShipper(t, Config{Logstash: LogstashConfig{Address: ls.addr()}}, Options{})
	fmt.Fprint(s, `{"before":true}`+"\n")
	eventually(t, "the first line", func() bool { return ls.count() == 1 })
	ls.hangUp()
	// A line written before the shipper sees the hang-up may be lost with
	// the connection (TCP cannot tell); once one arrives, all do.
	eventually(t, "a line on a new connection", func() bool {
		fmt.Fprint(s, `{"probe":true}`+"\n")
		return ls.count() > 1
	})
	for i := range 10 {
		fmt.Fprintf(s, `{"i":%d}`+"\n", i)
	}
	eventually(t, "the 10 lines", func() bool {
		lines, _ := ls.received()
		return len(lines) >= 10 && lines[len(lines)-1] == `{"i":9}`
	})
	lines, _ := ls.received()
	if got := strings.Join(lines[len(lines)-10:], ""); !strings.HasPrefix(got, `{"i":0}{"i":1}`) {
		t.Errorf("received %q", lines)
	}
	if st := s.Stats().Logstash; !st.Connected || st.LastError == "" {
		t.Errorf("stats %+v, want connected again, and the hang-up as the last error", st)
	}
}

func TestLogstashStuckNeverBlocksWrite(t *testing.T) {
	ls := newLogstashStandIn(t, "127.0.0.1:0", false) // accepts, never reads
	s, err := New(Config{Logstash: LogstashConfig{Address: ls.addr()}, Buffer: 100}, Options{Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(`{"level":"info","message":"` + strings.Repeat("x", 1000) + `"}` + "\n")
	// 200 MB: far more than the kernel's buffers on both sides hold.
	const n = 200_000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			s.Write(line)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Write blocked on a Logstash that does not read")
	}
	st := s.Stats().Logstash
	if st.Dropped == 0 || st.Queued > 100 || st.Shipped+st.Dropped+uint64(st.Queued) != n {
		t.Fatalf("stats %+v: want drops, at most 100 queued, and every line counted", st)
	}
	t.Logf("%d written: %d to the kernel, %d dropped, %d queued", n, st.Shipped, st.Dropped, st.Queued)

	// Close gives up on a stuck connection when its context ends (if the
	// kernel still had room, it ships the queued lines instead).
	closed := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		closed <- s.Close(ctx)
	}()
	select {
	case err := <-closed:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close: %v, want nil or the deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked on a Logstash that does not read")
	}
	if st := s.Stats().Logstash; st.Queued != 0 || st.Shipped+st.Dropped != n {
		t.Errorf("after Close: stats %+v, want every line shipped or dropped", st)
	}
}

func TestCloseGivesUp(t *testing.T) {
	s, err := New(Config{Logstash: LogstashConfig{Address: freeAddr(t)}}, Options{Backoff: func(int) time.Duration { return time.Hour }})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(s, `{"i":1}`+"\n")
	fmt.Fprint(s, `{"i":2}`+"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "2 lines not shipped") {
		t.Errorf("Close: %v, want 2 lines not shipped and the deadline", err)
	}
	if st := s.Stats().Logstash; st.Dropped != 2 || st.Queued != 0 {
		t.Errorf("stats %+v, want the 2 lines dropped", st)
	}
}
