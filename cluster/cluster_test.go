package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/meter"
)

// member starts a membership of name on b with fast timings; stop silences it.
func member(t *testing.T, b *bus.Bus, name string, onLost func(string)) (m *Membership, stop func()) {
	t.Helper()
	return memberWith(t, b, name, onLost, nil)
}

// memberWith is member with the features of its build.
func memberWith(t *testing.T, b *bus.Bus, name string, onLost func(string), features []string) (m *Membership, stop func()) {
	t.Helper()
	m = New(Options{Bus: b, Name: name, HeartbeatEvery: 20 * time.Millisecond, NodeTimeout: 200 * time.Millisecond, OnLost: onLost, Features: features,
		Reading: func() meter.Reading { return meter.Reading{Node: name, Time: time.Now()} }})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return m, cancel
}

func TestMembership(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	var mu sync.Mutex
	var lost []string
	a, _ := member(t, b, "a", func(name string) { mu.Lock(); lost = append(lost, name); mu.Unlock() })
	c, stopC := member(t, b, "c", nil)
	bustest.PollUntil(t, func() bool { return len(a.Nodes()) == 2 && len(c.Nodes()) == 2 })
	if !a.IsLive("c") || !a.IsLive("a") || a.IsLive("nobody") {
		t.Fatal("IsLive")
	}
	// A node never seen, in a cluster this node knows, is lost at once.
	nobody, _ := a.Lost("nobody")
	select {
	case <-nobody:
	default:
		t.Fatal("a node never seen is not lost")
	}
	// A watch released leaves nothing behind.
	_, release := a.Lost("c")
	release()
	a.mu.Lock()
	left := len(a.waiters)
	a.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d waiters left after release", left)
	}
	gone, _ := a.Lost("c")
	stopC()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("c was not declared lost")
	}
	bustest.PollUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(lost) == 1 && lost[0] == "c" })
	if a.IsLive("c") || len(a.Nodes()) != 1 {
		t.Fatalf("after the loss: %v", a.Nodes())
	}
}

// A feature is used once every live node has it: a node without it, while
// live, holds it back.
func TestAllHave(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	withFeature := func(name string, features []string) (*Membership, func()) {
		return memberWith(t, b, name, nil, features)
	}
	a, _ := withFeature("a", []string{"f"})
	if !a.AllHave("f") || a.AllHave("g") {
		t.Fatal("alone: a has f and not g")
	}
	c, _ := withFeature("c", []string{"f"})
	old, stopOld := withFeature("old", nil)
	bustest.PollUntil(t, func() bool { return len(a.Nodes()) == 3 })
	if a.AllHave("f") || c.AllHave("f") || old.AllHave("f") {
		t.Fatal("f used while a node without it is live")
	}
	stopOld()
	bustest.PollUntil(t, func() bool { return a.AllHave("f") && c.AllHave("f") })
}

// An upgrade is applied once every live node has its feature, and not before
// this node has been up a NodeTimeout: a node it has not heard from yet may
// lack it.
func TestUpgradeWaitsForEveryNode(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	_, stopOld := memberWith(t, b, "old", nil, nil)
	var applied atomic.Int64
	started := time.Now()
	var at atomic.Int64
	m := New(Options{Bus: b, Name: "new", HeartbeatEvery: 20 * time.Millisecond, NodeTimeout: 200 * time.Millisecond, Features: []string{"f"},
		Reading: func() meter.Reading { return meter.Reading{Node: "new", Time: time.Now()} },
		Upgrades: []Upgrade{{Feature: "f", Apply: func(context.Context) error {
			if applied.Add(1) == 1 {
				return errors.New("not yet") // tried again
			}
			at.Store(int64(time.Since(started)))
			return nil
		}}}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	bustest.PollUntil(t, func() bool { return len(m.Nodes()) == 2 })
	// Well past the settling time and several heartbeats: still held back.
	deadline := time.Now().Add(600 * time.Millisecond)
	for time.Now().Before(deadline) {
		if applied.Load() != 0 {
			t.Fatal("applied while a node without the feature is live")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	stopOld()
	bustest.PollUntil(t, func() bool { return applied.Load() == 2 })
	if d := time.Duration(at.Load()); d < 200*time.Millisecond {
		t.Fatalf("applied %v after start, before a NodeTimeout", d)
	}
}

func TestClaimIsExclusive(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	ctx := context.Background()
	var winners atomic.Int64
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c", "d"} {
		m := New(Options{Bus: b, Name: name, Reading: func() meter.Reading { return meter.Reading{} }})
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine, err := m.Claim(ctx, "RUN1", "dead")
			if err != nil {
				t.Error(err)
			}
			if mine {
				winners.Add(1)
				// Asking again (a retry) still says yes to the winner.
				if again, err := m.Claim(ctx, "RUN1", "dead"); err != nil || !again {
					t.Errorf("the winner's second claim: %v %v", again, err)
				}
			}
		}()
	}
	wg.Wait()
	if winners.Load() != 1 {
		t.Fatalf("%d nodes won the claim", winners.Load())
	}
}

// TestBeat: a heartbeat asked for is sent before the next tick.
func TestBeat(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	m := New(Options{Bus: b, Name: "a", HeartbeatEvery: time.Hour, Reading: func() meter.Reading { return meter.Reading{} }})
	var reads atomic.Int64
	m.opts.Reading = func() meter.Reading { reads.Add(1); return meter.Reading{Node: "a", Time: time.Now()} }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	bustest.PollUntil(t, func() bool { return reads.Load() == 1 })
	m.Beat()
	bustest.PollUntil(t, func() bool { return reads.Load() == 2 })
}

// TestTakeOver: every survivor takes over a lost node's runs, and each run
// is adopted by exactly one of them, which retries a failed adoption.
func TestTakeOver(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	running := func(context.Context) ([]api.Run, error) {
		return []api.Run{{ID: "R1", Coordinator: "dead"}, {ID: "R2", Coordinator: "dead"}, {ID: "R3", Coordinator: "alive"}}, nil
	}
	var mu sync.Mutex
	adopted := map[string][]string{} // run → adopters
	failures := map[string]int{}
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c"} {
		m := New(Options{Bus: b, Name: name, Reading: func() meter.Reading { return meter.Reading{} }})
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.TakeOver(context.Background(), "dead", running, func(_ context.Context, id string) error {
				mu.Lock()
				defer mu.Unlock()
				if id == "R2" && failures[id] == 0 { // the first try fails
					failures[id]++
					return errors.New("journal unavailable")
				}
				adopted[id] = append(adopted[id], name)
				return nil
			})
		}()
	}
	wg.Wait()
	if len(adopted["R1"]) != 1 || len(adopted["R2"]) != 1 || len(adopted["R3"]) != 0 || failures["R2"] != 1 {
		t.Fatalf("adopted %v (want R1 and R2 once each, R3 not), failures %v", adopted, failures)
	}
}
