package breaker

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBreakerOpensFailsFastAndCloses(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s := New(Config{Default: Policy{Failures: 3, Cooldown: 10 * time.Second}})
	s.now = func() time.Time { return now }
	const target = "redis 127.0.0.1:1"
	for i := range 3 {
		if err := s.Allow(target); err != nil {
			t.Fatalf("attempt %d refused: %v", i+1, err)
		}
		s.Done(target, true)
	}
	err := s.Allow(target)
	var oe *OpenError
	if !errors.As(err, &oe) || oe.Failures != 3 || !strings.Contains(err.Error(), "circuit open for redis 127.0.0.1:1 after 3 consecutive failures: calls fail fast until 12:00:10 (in 10s)") {
		t.Fatalf("after 3 failures: %v", err)
	}
	if st := s.Statuses(); len(st) != 1 || st[0].State != Open || st[0].Failures != 3 || !st[0].RetryAt.Equal(now.Add(10*time.Second)) {
		t.Fatalf("open: %+v", st)
	}
	// After the cool-down, one call tries; the others still fail fast.
	now = now.Add(10 * time.Second)
	if st := s.Statuses(); st[0].State != HalfOpen {
		t.Fatalf("cooled down: %+v", st)
	}
	if err := s.Allow(target); err != nil {
		t.Fatalf("the trial call was refused: %v", err)
	}
	if err := s.Allow(target); err == nil {
		t.Fatal("a second call went through while the trial is on")
	}
	s.Done(target, true) // the trial failed: open again, a full cool-down
	if err := s.Allow(target); err == nil || !strings.Contains(err.Error(), "after 4 consecutive failures") {
		t.Fatalf("after a failed trial: %v", err)
	}
	now = now.Add(10 * time.Second)
	if err := s.Allow(target); err != nil {
		t.Fatal(err)
	}
	s.Done(target, false) // the trial succeeded: closed
	if st := s.Statuses(); len(st) != 0 {
		t.Fatalf("closed: %+v", st)
	}
	if err := s.Allow(target); err != nil {
		t.Fatalf("closed, refused: %v", err)
	}
}

// TestBreakerCountsConsecutiveFailures: a success between failures resets
// the count; targets are independent; a target's own policy applies.
func TestBreakerCountsConsecutiveFailures(t *testing.T) {
	s := New(Config{Targets: map[string]Policy{"http api": {Failures: 1}}})
	for range 4 {
		s.Allow("sql db")
		s.Done("sql db", true)
	}
	s.Allow("sql db")
	s.Done("sql db", false)
	for range 4 {
		s.Allow("sql db")
		s.Done("sql db", true)
	}
	if err := s.Allow("sql db"); err != nil {
		t.Fatalf("4 failures after a success opened the default (5) breaker: %v", err)
	}
	s.Allow("http api")
	s.Done("http api", true)
	if err := s.Allow("http api"); err == nil {
		t.Fatal("the target's own policy (1 failure) did not apply")
	}
	if st := s.Statuses(); len(st) != 2 || st[0].Target != "http api" || st[0].State != Open || st[1].Target != "sql db" || st[1].State != Closed || st[1].Failures != 4 {
		t.Fatalf("statuses: %+v", st)
	}
}
