// Package breaker holds a node's circuit breakers, one per target a step
// reaches (an HTTP host, a SQL connection, a Redis or memcached address):
// after Failures consecutive failed attempts on a target, calls to it fail
// fast for Cooldown instead of each paying its timeouts and retries; then
// one call is let through, and its outcome closes the breaker or opens it
// for another cool-down.
//
// A failed attempt is one with a retryable error (the target could not be
// reached, or timed out); any other outcome, an error the target itself
// answered included, shows the target is up and resets the count.
package breaker

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
)

// Policy is when a breaker opens and for how long.
type Policy struct {
	// Failures is how many consecutive failed attempts open it (default 5).
	Failures int `yaml:"failures" json:"failures"`
	// Cooldown is how long it stays open before letting a call through
	// (default 10s).
	Cooldown time.Duration `yaml:"cooldown" json:"cooldown_ns"`
}

// Config is a node's breakers' configuration.
type Config struct {
	// Default applies to every target not in Targets.
	Default Policy `yaml:"default"`
	// Targets are policies by target, as the state shows them ("http
	// api.example.com", "sql db", "redis 127.0.0.1:6379").
	Targets map[string]Policy `yaml:"targets"`
}

// States of a breaker.
const (
	Closed   = "closed"    // calls go through
	Open     = "open"      // calls fail fast until RetryAt
	HalfOpen = "half-open" // one call is trying the target
)

// Status is one target's breaker, as `ctl integrations` shows it.
type Status struct {
	Target   string    `json:"target"`
	State    string    `json:"state"`
	Failures int       `json:"failures"` // consecutive failed attempts
	RetryAt  time.Time `json:"retry_at,omitzero"`
}

// OpenError is the error of a call refused by an open breaker.
type OpenError struct {
	Target   string
	Failures int
	RetryAt  time.Time
	now      time.Time
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("circuit open for %s after %d consecutive failures: calls fail fast until %s (in %s)",
		e.Target, e.Failures, e.RetryAt.UTC().Format("15:04:05"), e.RetryAt.Sub(e.now).Round(100*time.Millisecond))
}

// Set is a node's breakers. The zero value is not usable: make one with New.
type Set struct {
	cfg Config
	now func() time.Time

	mu    sync.Mutex
	state map[string]*state
}

type state struct {
	failures int
	retryAt  time.Time // when open: when a call may try again
	trying   bool      // half-open: a call is trying
}

// New returns a Set applying cfg (zero fields take the defaults).
func New(cfg Config) *Set {
	return &Set{cfg: cfg, now: time.Now, state: map[string]*state{}}
}

// policy returns target's policy with defaults.
func (s *Set) policy(target string) Policy {
	p, ok := s.cfg.Targets[target]
	if !ok {
		p = s.cfg.Default
	}
	if p.Failures <= 0 {
		p.Failures = s.cfg.Default.Failures
	}
	if p.Failures <= 0 {
		p.Failures = 5
	}
	if p.Cooldown <= 0 {
		p.Cooldown = s.cfg.Default.Cooldown
	}
	if p.Cooldown <= 0 {
		p.Cooldown = 10 * time.Second
	}
	return p
}

// Allow reports whether a call to target may go: nil, or an *OpenError. A
// nil answer must be followed by Done.
func (s *Set) Allow(target string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state[target]
	if st == nil || st.retryAt.IsZero() {
		return nil // closed
	}
	now := s.now()
	if now.Before(st.retryAt) || st.trying {
		return &OpenError{Target: target, Failures: st.failures, RetryAt: st.retryAt, now: now}
	}
	st.trying = true // half-open: this call tries the target
	return nil
}

// Done records the outcome of a call Allow let through: failed when its
// error was retryable (the target did not answer).
func (s *Set) Done(target string, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state[target]
	if !failed {
		delete(s.state, target) // closed, no failures
		return
	}
	if st == nil {
		st = &state{}
		s.state[target] = st
	}
	st.failures++
	p := s.policy(target)
	if st.trying || st.failures >= p.Failures {
		st.trying = false
		st.retryAt = s.now().Add(p.Cooldown)
	}
}

// Abandon ends a call Allow let through without an outcome (cancelled
// before it reached the target): a trial it was is tried again.
func (s *Set) Abandon(target string) {
	if target == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.state[target]; st != nil {
		st.trying = false
	}
}

// Statuses returns the breakers that are not closed with no failures, by
// target.
func (s *Set) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]Status, 0, len(s.state))
	for target, st := range s.state {
		status := Status{Target: target, State: Closed, Failures: st.failures}
		switch {
		case st.trying:
			status.State = HalfOpen
		case !st.retryAt.IsZero():
			status.State, status.RetryAt = Open, st.retryAt
			if !now.Before(st.retryAt) {
				status.State = HalfOpen // the next call tries
			}
		}
		out = append(out, status)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out
}

// Interceptor returns the step interceptor that applies s to every attempt
// with a target (builtins.Step.Target): an open breaker refuses it with
// builtins.CodeCircuitOpen, not retried; its outcome feeds the breaker (a
// retryable error is a failure; an attempt cancelled, or that could not
// take its resource units, says nothing).
func (s *Set) Interceptor() builtins.Interceptor { return interceptor{s: s} }

type interceptor struct {
	builtins.InterceptorBase
	s *Set
}

func (ic interceptor) InterceptAttempt(ctx context.Context, a *builtins.StepAttempt, next builtins.AttemptFunc) (json.RawMessage, *builtins.StepError) {
	if a.Target == "" {
		return next(ctx, a)
	}
	if err := ic.s.Allow(a.Target); err != nil {
		return nil, &builtins.StepError{Code: builtins.CodeCircuitOpen, Message: a.Step.Name + ": " + err.Error()}
	}
	v, serr := next(ctx, a)
	if serr != nil && (serr.Code == builtins.CodeCancelled || serr.Code == builtins.CodeResource) {
		ic.s.Abandon(a.Target) // it did not reach the target: says nothing of it
	} else {
		ic.s.Done(a.Target, serr != nil && serr.Retryable)
	}
	return v, serr
}
