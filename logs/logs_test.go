package logs_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/logs"
)

func TestTapMatches(t *testing.T) {
	acme := map[string]string{"customer": "acme", "tier": "gold"}
	for _, tt := range []struct {
		tap  logs.Tap
		want bool
	}{
		{logs.Tap{}, true},
		{logs.Tap{Attrs: map[string]string{"customer": "acme"}}, true},
		{logs.Tap{Attrs: map[string]string{"customer": "acme", "tier": "gold"}}, true},
		{logs.Tap{Attrs: map[string]string{"customer": "acme", "tier": "silver"}}, false},
		{logs.Tap{Attrs: map[string]string{"customer": "globex"}}, false},
		{logs.Tap{Attrs: map[string]string{"region": ""}}, true}, // an attribute the run lacks reads as ""
		{logs.Tap{Level: zerolog.WarnLevel}, false},
		{logs.Tap{Level: zerolog.InfoLevel}, true},
		{logs.Tap{Run: "r1"}, true},
		{logs.Tap{Run: "r2"}, false},
		{logs.Tap{Script: "checkout"}, true},
		{logs.Tap{Script: "refund"}, false},
		{logs.Tap{Node: "n1"}, true},
		{logs.Tap{Node: "n2"}, false},
	} {
		if got := tt.tap.Matches("r1", "checkout", "n1", zerolog.InfoLevel, acme); got != tt.want {
			t.Errorf("%+v: Matches = %v, want %v", tt.tap, got, tt.want)
		}
	}
}

// lines reads run's stored lines.
func lines(t *testing.T, b *bus.Bus, run string) []string {
	t.Helper()
	var out []string
	if err := b.RunLogs(context.Background(), run, time.Time{}, func(line []byte, _ time.Time) bool {
		out = append(out, string(line))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWriterBounds: past its limit a run's writer publishes one marker and
// then nothing (the node's output still gets every line); a line over
// MaxLine is replaced by a note of its size.
func TestWriterBounds(t *testing.T) {
	b := bustest.Open(t, bus.Options{Name: "n1"})
	var out strings.Builder
	var mu sync.Mutex
	w := logs.NewWriter(logs.WriterOptions{Bus: b, Out: writerFunc(func(p []byte) { mu.Lock(); out.Write(p); mu.Unlock() }),
		OutLevel: zerolog.InfoLevel, Run: "r1", Script: "s", Node: "n1", Limit: 5})
	l := zerolog.New(w)
	l.Info().Str("big", strings.Repeat("x", logs.MaxLine)).Msg("huge")
	for i := range 10 {
		l.Info().Int("i", i).Msg("flood")
	}
	l.Debug().Msg("below the node's level")
	var got []string
	bustest.PollUntil(t, func() bool { got = lines(t, b, "r1"); return len(got) >= 6 })
	if len(got) != 6 || !strings.Contains(got[0], "a line of 16") || !strings.Contains(got[0], "over the limit of 16384, was cut") ||
		!strings.Contains(got[4], `"i":3`) || !strings.Contains(got[5], "log cut: this run wrote more than 5 lines") {
		t.Fatalf("stored:\n%s", strings.Join(got, ""))
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(out.String(), "\n"); n != 11 || strings.Contains(out.String(), "below the node's level") {
		t.Errorf("the node's output got %d lines:\n%s", n, out.String())
	}
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// TestFollow: a follower gets the lines of the runs its tap matches, from
// writers that learned of the tap from the bucket, and none of others'; a
// follower slower than its lines is told how many it lost.
func TestFollow(t *testing.T) {
	b := bustest.Open(t, bus.Options{Name: "n1"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	taps, err := logs.WatchTaps(ctx, b, &zerolog.Logger{})
	if err != nil {
		t.Fatal(err)
	}
	writer := func(run, customer string) zerolog.Logger {
		return zerolog.New(logs.NewWriter(logs.WriterOptions{Bus: b, Taps: taps, Run: run, Script: "s", Node: "n1",
			Attrs: map[string]string{"customer": customer}}))
	}
	acme, globex := writer("r1", "acme"), writer("r2", "globex")

	var got atomic.Int64
	var dropped atomic.Int64
	var sawLast atomic.Bool
	release := make(chan struct{})
	followed := make(chan error, 1)
	go func() {
		followed <- logs.Follow(ctx, b, logs.Tap{Attrs: map[string]string{"customer": "acme"}}, 8, func(line []byte, d int) {
			if line == nil && d == 0 {
				return // the tap is in place
			}
			if d > 0 {
				dropped.Add(int64(d))
				return
			}
			if strings.Contains(string(line), `"r2"`) {
				t.Errorf("a line of another customer: %s", line)
			}
			if strings.Contains(string(line), `"message":"last"`) {
				sawLast.Store(true)
			}
			if got.Add(1) == 1 {
				<-release // slow: the lines meanwhile overflow the buffer
			}
		})
	}()
	bustest.PollUntil(t, func() bool { // until every writer knows the tap
		acme.Info().Msg("probe")
		return got.Load() > 0
	})
	// A second subscriber to every tap sees the lines arrive: the follower
	// is released only once they all have, while it was stuck.
	var tapped atomic.Int64
	unsub, err := b.Subscribe(bus.TapPrefix+">", func(bus.Msg) { tapped.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	base := tapped.Load()
	for i := range 1000 {
		acme.Info().Int("i", i).Msg("acme")
		globex.Info().Int("i", i).Msg("globex")
	}
	bustest.PollUntil(t, func() bool { return tapped.Load()-base >= 1000 })
	close(release)
	// A last line (again, until one gets through the full buffer) comes
	// after the note of the lines dropped before it.
	bustest.PollUntil(t, func() bool {
		acme.Info().Msg("last")
		return sawLast.Load()
	})
	if dropped.Load() == 0 || got.Load()+dropped.Load() < 1002 {
		t.Errorf("%d lines and %d dropped, want some dropped and at least 1002 in all", got.Load(), dropped.Load())
	}
	cancel()
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
}
