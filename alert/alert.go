// Package alert raises alerts from engine events by rules of the node
// configuration, with no script involved: a run that failed, a circuit
// breaker that stayed open, a node that was lost. Each alert goes to a
// Notifier (the slack and pagerduty integrations' instances are ones).
//
//	alerts:
//	  - name: checkout failed
//	    when: run_failed          # run_failed | breaker_open | node_lost
//	    script: checkout          # run_failed: only these scripts (a glob)
//	    notify: slack
//	    channel: "#ops"
//	  - name: database down
//	    when: breaker_open
//	    target: "sql db"          # breaker_open: only these targets (a glob)
//	    for: 1m                   # open this long before it fires
//	    notify: pagerduty
//	    severity: critical
//
// An alert fires once per rule and subject (the script, the target, the
// node) while its condition holds, and resolves when it ends: a run of the
// script completes, the breaker closes, the node is back. Notifications are
// sent asynchronously, each notifier from a bounded queue of its own, so
// that the engine's calls never block; one that fails is retried twice,
// then logged and counted (Stats).
//
// No real Slack or PagerDuty endpoint is reachable from this project's
// machines: the tests use fake notifiers and local stand-ins of the two
// services' documented APIs.
package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
)

// Notifier tells someone of an alert: posts to a channel, pages.
type Notifier interface {
	// Notify sends a (or its resolution, when a.Resolved), within ctx.
	// An error that is a *builtins.StepError and not Retryable is not
	// tried again.
	Notify(ctx context.Context, a Alert) error
}

// Alert is one notification: an alert raised, or resolved.
type Alert struct {
	// Rule is the rule that raised it.
	Rule Rule
	// Subject is what it is about: a script's name (run_failed), a
	// breaker's target (breaker_open), a node's name (node_lost).
	Subject string
	// Summary is one line for people: `[checkout failed] script checkout:
	// run 01J… failed: …`.
	Summary string
	// Details are its particulars: "script", "run", "error", "target",
	// "since", "node"...
	Details map[string]string
	// DedupKey identifies the alert across its notifications, and across
	// the nodes that raise it: "drover/<rule>/<subject>" (hashed above 255
	// bytes, PagerDuty's limit).
	DedupKey string
	// Resolved says that the condition has ended.
	Resolved bool
}

// Stats counts notifications.
type Stats struct {
	Sent    int64 // delivered
	Failed  int64 // not delivered after their attempts
	Dropped int64 // not sent: the notifier's queue was full, or the node was stopping
}

// QueueSize is how many notifications wait for each notifier at most;
// more are dropped (and counted) rather than block the engine.
const QueueSize = 128

// notifyTimeout bounds each attempt to send a notification.
const notifyTimeout = 30 * time.Second

// timing is how long Alerts waits: for the time being (clock), between
// the attempts of a notification (retry: before the second, the third...)
// and for the queued notifications when it closes (grace).
type timing struct {
	clock clock
	retry []time.Duration
	grace time.Duration
}

var defaultTiming = timing{clock: realClock{}, retry: []time.Duration{time.Second, 5 * time.Second}, grace: 5 * time.Second}

// Alerts applies a node's alert rules to the events the engine reports.
// Its methods are safe for concurrent use, never block on a notifier, and
// do nothing on a nil *Alerts.
type Alerts struct {
	rules     []Rule
	notifiers map[string]Notifier
	log       zerolog.Logger
	timing

	ctx    context.Context // ends when Close gives up waiting
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	queues map[string]chan job
	states map[key]*state

	sent, failed, dropped atomic.Int64
}

// key is an alert's identity: a rule and a subject.
type key struct {
	rule    int
	subject string
}

// state is an alert that holds: pending (a breaker_open rule's `for` has
// not yet elapsed) or fired.
type state struct {
	fired      bool
	since      time.Time   // when the condition began
	stop       func() bool // stops the pending timer
	suppressed int         // events of the same alert while it held
}

type job struct {
	notifier Notifier
	alert    Alert
}

// New returns the alerts of cfg, sent to notifiers by name (a rule's
// notify). It checks every rule, and returns every problem found, each a
// *RuleError naming the rule and the setting.
func New(cfg Config, notifiers map[string]Notifier, log zerolog.Logger) (*Alerts, error) {
	return newAlerts(cfg, notifiers, log, defaultTiming)
}

func newAlerts(cfg Config, notifiers map[string]Notifier, log zerolog.Logger, tm timing) (*Alerts, error) {
	if err := validate(cfg, notifiers); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Alerts{
		rules: slices.Clone(cfg), notifiers: maps.Clone(notifiers), log: log, timing: tm,
		ctx:    ctx,
		cancel: cancel,
		queues: map[string]chan job{},
		states: map[key]*state{},
	}
	for _, r := range cfg {
		if _, ok := a.queues[r.Notify]; ok {
			continue
		}
		q := make(chan job, QueueSize)
		a.queues[r.Notify] = q
		a.wg.Add(1)
		go a.deliverAll(q)
	}
	return a, nil
}

// RunEnded reports that a run of script ended with status (api.Status*),
// and errMsg if it failed: a failed run fires the run_failed rules that
// match the script, unless their alert for it already holds; a completed
// one resolves them.
func (a *Alerts) RunEnded(script, runID, status, errMsg string) {
	if a == nil || (status != api.StatusFailed && status != api.StatusCompleted) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, r := range a.rules {
		if r.When != WhenRunFailed || !matches(r.Script, script) {
			continue
		}
		k := key{i, script}
		st := a.states[k]
		if status == api.StatusCompleted {
			if st != nil {
				delete(a.states, k)
				details := map[string]string{"script": script, "run": runID, "failed_runs": strconv.Itoa(st.suppressed + 1)}
				summary := fmt.Sprintf("[%s] resolved: script %s: run %s completed", r.Name, script, runID)
				if st.suppressed > 0 {
					summary += fmt.Sprintf(" (%d more runs failed meanwhile)", st.suppressed)
				}
				a.enqueue(k, Alert{Rule: r, Subject: script, Summary: summary, Details: details, Resolved: true})
			}
			continue
		}
		if st != nil {
			st.suppressed++
			continue
		}
		a.states[k] = &state{fired: true, since: a.clock.Now()}
		a.enqueue(k, Alert{Rule: r, Subject: script,
			Summary: fmt.Sprintf("[%s] script %s: run %s failed: %s", r.Name, script, runID, firstLine(errMsg, 300)),
			Details: map[string]string{"script": script, "run": runID, "status": status, "error": clip(errMsg, 4000)}})
	}
}

// BreakerChanged reports that this node's circuit breaker of target opened
// (open, at since) or closed. An opening starts the breaker_open rules
// that match the target: each fires once the breaker has been open for
// its `for`, unless it closed first; a closing resolves those that fired.
// Reporting an opening again while the breaker is open changes nothing.
func (a *Alerts) BreakerChanged(target string, open bool, since time.Time) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock.Now()
	if since.IsZero() || since.After(now) {
		since = now
	}
	for i, r := range a.rules {
		if r.When != WhenBreakerOpen || !matches(r.Target, target) {
			continue
		}
		k := key{i, target}
		st := a.states[k]
		if !open {
			if st == nil {
				continue
			}
			delete(a.states, k)
			if st.stop != nil {
				st.stop()
			}
			if st.fired {
				a.enqueue(k, Alert{Rule: r, Subject: target,
					Summary: fmt.Sprintf("[%s] resolved: circuit breaker for %s closed after %s", r.Name, target, now.Sub(st.since).Round(time.Second)),
					Details: map[string]string{"target": target, "since": st.since.UTC().Format(time.RFC3339), "closed": now.UTC().Format(time.RFC3339)}, Resolved: true})
			}
			continue
		}
		if st != nil {
			continue // already pending or fired
		}
		st = &state{since: since}
		a.states[k] = st
		if wait := since.Add(r.For).Sub(now); wait > 0 {
			st.stop = a.clock.AfterFunc(wait, func() { a.breakerDue(k, st) })
			continue
		}
		a.fireBreaker(k, st)
	}
}

// breakerDue fires a breaker_open alert whose `for` has elapsed, if the
// breaker is still open.
func (a *Alerts) breakerDue(k key, st *state) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.states[k] != st || st.fired {
		return // closed meanwhile
	}
	a.fireBreaker(k, st)
}

// fireBreaker fires st, under a.mu.
func (a *Alerts) fireBreaker(k key, st *state) {
	r := a.rules[k.rule]
	st.fired = true
	open := a.clock.Now().Sub(st.since).Round(time.Second)
	a.enqueue(k, Alert{Rule: r, Subject: k.subject,
		Summary: fmt.Sprintf("[%s] circuit breaker for %s open since %s (%s)", r.Name, k.subject, st.since.UTC().Format("15:04:05 UTC"), open),
		Details: map[string]string{"target": k.subject, "since": st.since.UTC().Format(time.RFC3339), "open_for": open.String()}})
}

// NodeLost reports that node left the cluster (its heartbeats stopped):
// the node_lost rules fire, once per node until NodeReturned.
func (a *Alerts) NodeLost(node string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, r := range a.rules {
		if r.When != WhenNodeLost {
			continue
		}
		k := key{i, node}
		if st := a.states[k]; st != nil {
			st.suppressed++
			continue
		}
		a.states[k] = &state{fired: true, since: a.clock.Now()}
		a.enqueue(k, Alert{Rule: r, Subject: node, Summary: fmt.Sprintf("[%s] node %s lost", r.Name, node),
			Details: map[string]string{"node": node}})
	}
}

// NodeReturned reports that a node NodeLost reported is back: its
// node_lost alerts resolve, and a later loss fires them again.
func (a *Alerts) NodeReturned(node string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, r := range a.rules {
		k := key{i, node}
		if r.When != WhenNodeLost || a.states[k] == nil {
			continue
		}
		st := a.states[k]
		delete(a.states, k)
		a.enqueue(k, Alert{Rule: r, Subject: node, Summary: fmt.Sprintf("[%s] resolved: node %s is back after %s", r.Name, node, a.clock.Now().Sub(st.since).Round(time.Second)),
			Details: map[string]string{"node": node}, Resolved: true})
	}
}

// enqueue queues al for its rule's notifier, under a.mu, without waiting:
// a full queue drops it (and forgets a firing, so that the next event
// fires again).
func (a *Alerts) enqueue(k key, al Alert) {
	if a.closed {
		return
	}
	al.DedupKey = DedupKey(al.Rule.Name, al.Subject)
	if al.Details == nil {
		al.Details = map[string]string{}
	}
	al.Details["rule"] = al.Rule.Name
	al.Details["when"] = al.Rule.When
	select {
	case a.queues[al.Rule.Notify] <- job{notifier: a.notifiers[al.Rule.Notify], alert: al}:
		a.log.Info().Str("rule", al.Rule.Name).Str("subject", al.Subject).Bool("resolved", al.Resolved).Msg("alert")
	default:
		a.dropped.Add(1)
		if !al.Resolved {
			delete(a.states, k)
		}
		a.log.Error().Str("rule", al.Rule.Name).Str("subject", al.Subject).Str("notify", al.Rule.Notify).Int("queued", QueueSize).
			Msg("alert dropped: its notifier's queue is full")
	}
}

// deliverAll sends the notifications of one notifier's queue, in order,
// until it is closed.
func (a *Alerts) deliverAll(q <-chan job) {
	defer a.wg.Done()
	for j := range q {
		a.deliver(j)
	}
}

// deliver sends one notification, trying again after a.retry's waits
// unless the error is final.
func (a *Alerts) deliver(j job) {
	log := a.log.With().Str("rule", j.alert.Rule.Name).Str("subject", j.alert.Subject).Str("notify", j.alert.Rule.Notify).Bool("resolved", j.alert.Resolved).Logger()
	for attempt := 1; ; attempt++ {
		if a.ctx.Err() != nil {
			a.dropped.Add(1)
			log.Error().Msg("alert not sent: the node stopped first")
			return
		}
		ctx, cancel := context.WithTimeout(a.ctx, notifyTimeout)
		err := j.notifier.Notify(ctx, j.alert)
		cancel()
		if err == nil {
			a.sent.Add(1)
			return
		}
		var se *builtins.StepError
		final := errors.As(err, &se) && !se.Retryable
		if final || attempt > len(a.retry) || a.ctx.Err() != nil {
			a.failed.Add(1)
			log.Error().Int("attempts", attempt).Str("error", builtins.Redact(err.Error())).Msg("alert notification failed")
			return
		}
		log.Warn().Int("attempt", attempt).Str("error", builtins.Redact(err.Error())).Msg("alert notification failed; trying again")
		t := time.NewTimer(a.retry[attempt-1])
		select {
		case <-t.C:
		case <-a.ctx.Done():
			t.Stop()
		}
	}
}

// Stats returns the counts of notifications so far.
func (a *Alerts) Stats() Stats {
	if a == nil {
		return Stats{}
	}
	return Stats{Sent: a.sent.Load(), Failed: a.failed.Load(), Dropped: a.dropped.Load()}
}

// Close stops the alerts: later events are ignored, pending breaker_open
// timers stopped, and the notifications already queued get a few seconds
// to be sent before they are dropped. It returns once the senders have
// stopped.
func (a *Alerts) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	for _, st := range a.states {
		if st.stop != nil {
			st.stop()
		}
	}
	for _, q := range a.queues {
		close(q)
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	t := time.NewTimer(a.grace)
	select {
	case <-done:
		t.Stop()
	case <-t.C:
		a.cancel()
		<-done
	}
	a.cancel()
	return nil
}

// DedupKey is the key of the alert of rule about subject:
// "drover/<rule>/<subject>", or its hash when that is over 255 bytes
// (PagerDuty's limit).
func DedupKey(rule, subject string) string {
	k := "drover/" + rule + "/" + subject
	if len(k) <= 255 {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "drover/" + hex.EncodeToString(sum[:])
}

// firstLine returns s's first line, cut to at most n runes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return clip(s, n)
}

// clip cuts s to at most n runes, marking the cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// clock is the time as Alerts sees it; tests replace it.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
