package alert

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// The events a rule can watch, as its `when` names them.
const (
	// WhenRunFailed fires when a run of a script fails, once while that
	// script's runs keep failing, and resolves when one completes.
	WhenRunFailed = "run_failed"
	// WhenBreakerOpen fires when a node's circuit breaker of a target has
	// stayed open for the rule's `for`, and resolves when it closes.
	WhenBreakerOpen = "breaker_open"
	// WhenNodeLost fires when a node of the cluster is lost, and resolves
	// when it is back.
	WhenNodeLost = "node_lost"
)

var events = []string{WhenRunFailed, WhenBreakerOpen, WhenNodeLost}

// Config is the node configuration's `alerts:` section: its rules, in order.
type Config []Rule

// Rule says which event raises an alert and who hears of it.
type Rule struct {
	// Name names the rule in notifications and logs; unique.
	Name string `yaml:"name"`
	// When is the event: run_failed, breaker_open or node_lost.
	When string `yaml:"when"`
	// Script filters run_failed to the runs of matching scripts (a glob,
	// path.Match syntax: "checkout", "billing-*"); empty: every script.
	Script string `yaml:"script"`
	// For is how long a breaker must stay open before breaker_open fires
	// (0: at once).
	For time.Duration `yaml:"for"`
	// Target filters breaker_open to matching targets (a glob: "sql db",
	// "http *"); empty: every target.
	Target string `yaml:"target"`
	// Notify names the notifier that hears of the alert ("slack",
	// "pagerduty"), one of those New is given.
	Notify string `yaml:"notify"`
	// Channel is the Slack channel to post to ("#ops").
	Channel string `yaml:"channel"`
	// Severity is PagerDuty's: critical, error (the default), warning or info.
	Severity string `yaml:"severity"`
}

// ErrBadRule is what every *RuleError wraps: New was given a rule it cannot
// apply.
var ErrBadRule = errors.New("alert: bad rule")

// A RuleError says what is wrong with one rule of a Config.
type RuleError struct {
	Index int    // the rule's position in the Config, from 0
	Name  string // its name, if it has one
	Field string // the setting at fault ("when", "notify", ...)
	Err   error  // what is wrong with it
}

// Error implements error: `alert: alerts[1] ("checkout failed"): when: ...`.
func (e *RuleError) Error() string {
	name := ""
	if e.Name != "" {
		name = fmt.Sprintf(" (%q)", e.Name)
	}
	return fmt.Sprintf("alert: alerts[%d]%s: %s: %v", e.Index, name, e.Field, e.Err)
}

// Unwrap returns ErrBadRule and the cause.
func (e *RuleError) Unwrap() []error { return []error{ErrBadRule, e.Err} }

// RuleChecker is a Notifier that checks the settings of the rules that
// name it (a channel for Slack, a severity for PagerDuty), and whether it
// is configured at all.
type RuleChecker interface {
	CheckRule(r Rule) error
}

// validate returns every problem of cfg, each a *RuleError.
func validate(cfg Config, notifiers map[string]Notifier) error {
	var errs []error
	seen := map[string]int{}
	for i, r := range cfg {
		bad := func(field, format string, args ...any) {
			errs = append(errs, &RuleError{Index: i, Name: r.Name, Field: field, Err: fmt.Errorf(format, args...)})
		}
		switch j, dup := seen[r.Name]; {
		case strings.TrimSpace(r.Name) == "":
			bad("name", "missing; give each rule a name, e.g. name: checkout failed")
		case dup:
			bad("name", "alerts[%d] has the same name; names must be unique", j)
		default:
			seen[r.Name] = i
		}
		if !slices.Contains(events, r.When) {
			if r.When == "" {
				bad("when", "missing; want one of %s", strings.Join(events, ", "))
			} else {
				bad("when", "%q is not an event; want one of %s", r.When, strings.Join(events, ", "))
			}
		}
		if r.Script != "" {
			if r.When != WhenRunFailed {
				bad("script", "filters run_failed rules only, not %s", r.When)
			} else if _, err := path.Match(r.Script, ""); err != nil {
				bad("script", "%q is not a glob: %v", r.Script, err)
			}
		}
		if r.Target != "" {
			if r.When != WhenBreakerOpen {
				bad("target", "filters breaker_open rules only, not %s", r.When)
			} else if _, err := path.Match(r.Target, ""); err != nil {
				bad("target", "%q is not a glob: %v", r.Target, err)
			}
		}
		switch {
		case r.For < 0:
			bad("for", "%s is negative", r.For)
		case r.For > 0 && r.When != WhenBreakerOpen:
			bad("for", "applies to breaker_open rules only, not %s", r.When)
		}
		n, ok := notifiers[r.Notify]
		switch {
		case r.Notify == "":
			bad("notify", "missing; want one of %s", have(notifiers))
		case !ok:
			bad("notify", "%q is not configured on this node (it has: %s)", r.Notify, have(notifiers))
		default:
			if c, ok := n.(RuleChecker); ok {
				if err := c.CheckRule(r); err != nil {
					var fe *FieldError
					if errors.As(err, &fe) {
						errs = append(errs, &RuleError{Index: i, Name: r.Name, Field: fe.Field, Err: fe.Err})
					} else {
						errs = append(errs, &RuleError{Index: i, Name: r.Name, Field: "notify", Err: err})
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// A FieldError is what a RuleChecker returns about one setting of a rule.
type FieldError struct {
	Field string // "channel", "severity"
	Err   error
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

func have(notifiers map[string]Notifier) string {
	if len(notifiers) == 0 {
		return "none: configure the slack or pagerduty integration"
	}
	names := make([]string, 0, len(notifiers))
	for n := range notifiers {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// matches reports whether name matches the filter glob (empty: all).
func matches(glob, name string) bool {
	if glob == "" {
		return true
	}
	ok, _ := path.Match(glob, name)
	return ok
}
