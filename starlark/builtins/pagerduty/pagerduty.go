// Package pagerduty is the pagerduty integration: scripts raise,
// acknowledge and resolve PagerDuty alerts through the Events API v2
// (POST {url}/v2/enqueue), with the integration key of the node's
// configuration as the routing key.
//
//	pagerduty.trigger(summary, source, severity="error", details={}, dedup_key=None)
//	    -> {"dedup_key": "...", "status": "success"}
//	pagerduty.acknowledge(dedup_key) -> {"dedup_key": "...", "status": "success"}
//	pagerduty.resolve(dedup_key) -> {"dedup_key": "...", "status": "success"}
//
// trigger's dedup_key defaults to the step's idempotency key
// ("<run>/<step>"), so that a trigger retried, or executed again after its
// node stopped, adds to the same alert rather than paging twice. PagerDuty
// refusing the event (HTTP 400, invalid event) fails the step with code
// "pagerduty", not retried; HTTP 429 (code "rate_limited") and 5xx, and a
// PagerDuty that cannot be reached ("transport"), are retried, and count
// towards the node's circuit breaker of "pagerduty <host>". The
// integration declares the cluster-wide rate resource "pagerduty"
// (PagerDuty's limit per integration key), of which each call takes a
// unit. Its instance is also an alert.Notifier.
//
//	integrations:
//	  pagerduty:
//	    routing_key: ${PAGERDUTY_ROUTING_KEY}   # an Events API v2 integration key
//
// No real PagerDuty endpoint is reachable from this project's machines:
// the tests run against a local stand-in of the documented Events API v2.
//
// Its init registers the integration into builtins.Default.
package pagerduty

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/starlark/builtins"
)

// Codes of the step errors of pagerduty.*, beside builtins' own.
const (
	// Code is PagerDuty refusing the event (HTTP 400, invalid event; or
	// another 4xx). Not retried.
	Code = "pagerduty"
	// CodeRateLimited is HTTP 429 from PagerDuty. Retried.
	CodeRateLimited = "rate_limited"
)

// DefaultURL is the Events API's base URL.
const DefaultURL = "https://events.pagerduty.com"

// Resource is the rate resource the integration declares and each call
// takes one unit of.
const Resource = "pagerduty"

// rate is PagerDuty's limit: "approximately 120 calls/minute per
// integration key", over a sliding minute
// (https://developer.pagerduty.com/docs/events-api-v2/rate-limits/),
// shared by every node that sends with the key.
const rate = Resource + "=120/m,burst=10,scope=cluster"

// Severities are the payload severities PagerDuty accepts.
var Severities = []string{"critical", "error", "warning", "info"}

// Limits of an event's fields, as the Events API v2 documents them.
const (
	maxSummary  = 1024 // characters
	maxDedupKey = 255  // characters
)

// Config is the pagerduty integration's configuration.
type Config struct {
	// RoutingKey is the integration key of an Events API v2 integration
	// of a service (32 characters).
	RoutingKey string `yaml:"routing_key" secret:"true"`
	// URL is the Events API's base URL (default https://events.pagerduty.com).
	URL string `yaml:"url"`
}

// Client is a node's pagerduty instance.
type Client struct {
	cfg     Config
	http    *http.Client
	base    string // URL, without a trailing /
	enqueue string // {URL}/v2/enqueue
	host    string
}

var (
	_ builtins.Checker          = (*Client)(nil)
	_ builtins.ResourceDeclarer = (*Client)(nil)
	_ io.Closer                 = (*Client)(nil)
	_ alert.Notifier            = (*Client)(nil)
	_ alert.RuleChecker         = (*Client)(nil)
)

// Integration is the pagerduty integration.
var Integration = builtins.Define("pagerduty", "PagerDuty: trigger, acknowledge and resolve alerts (Events API v2)", Config{URL: DefaultURL}, open)

func open(_ context.Context, c Config) (*Client, error) {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	u, err := url.Parse(strings.TrimSuffix(c.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q: want an http(s) URL such as %s", c.URL, DefaultURL)
	}
	return &Client{cfg: c, http: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		base: u.String(), enqueue: u.String() + "/v2/enqueue", host: u.Host}, nil
}

func init() {
	Integration.Steps = []*builtins.Step{
		step("pagerduty.trigger", "raise a PagerDuty alert (once per dedup_key)", triggerArgs),
		step("pagerduty.acknowledge", "acknowledge a PagerDuty alert by its dedup_key", keyArgs("acknowledge")),
		step("pagerduty.resolve", "resolve a PagerDuty alert by its dedup_key", keyArgs("resolve")),
	}
	Register(builtins.Default)
}

func step(name, doc string, args func(*starlark.Builtin, starlark.Tuple, []starlark.Tuple) (any, error)) *builtins.Step {
	return &builtins.Step{Name: name, Doc: doc, Args: args, Exec: builtins.Call("pagerduty", send),
		Target: target, Resources: demand, Timeout: 10 * time.Second, Retry: retry}
}

// Register adds the pagerduty integration and its builtins to r.
func Register(r *builtins.Registry) { r.MustRegisterIntegration(Integration) }

// retry spaces attempts for a PagerDuty that is rate limiting or briefly
// down, as its documentation asks ("retry after some time"): 1 s, 4 s,
// 16 s. Each is safe to repeat: events with one dedup_key make one alert.
var retry = builtins.RetryPolicy{MaxAttempts: 4, Initial: time.Second, Max: 30 * time.Second, Multiplier: 4}

// Check asks the Events API's host for its root page: the Events API has
// no call that sends no event, and any answer shows that the node reaches
// it (through its proxy, if it has one).
func (c *Client) Check(ctx context.Context) error {
	if c.cfg.RoutingKey == "" {
		return fmt.Errorf("no routing_key (add integrations: pagerduty: routing_key: ${PAGERDUTY_ROUTING_KEY} to the node's --config file): %w", builtins.ErrNotConfigured)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("events API at %s: %v; can this node reach it?", c.host, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Body.Close()
}

// Resources declares PagerDuty's rate when the node has a routing key
// (builtins.ResourceDeclarer): placement sends pagerduty.* only to nodes
// that have one, and no faster than PagerDuty takes.
func (c *Client) Resources() []string {
	if c.cfg.RoutingKey == "" {
		return nil
	}
	return []string{rate}
}

// Close closes the client's idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

func demand(json.RawMessage) []builtins.Demand {
	return []builtins.Demand{{Resource: Resource, Amount: 1}}
}

// target is the breaker target of the node's Events API.
func target(env builtins.Env, _ json.RawMessage) string {
	if c, err := builtins.Use[*Client](env, "pagerduty"); err == nil {
		return "pagerduty " + c.host
	}
	return ""
}

// event is a call's journaled arguments: an Events API v2 event, less
// the routing key.
type event struct {
	Action   string         `json:"action"`
	DedupKey string         `json:"dedup_key,omitempty"`
	Summary  string         `json:"summary,omitempty"`
	Source   string         `json:"source,omitempty"`
	Severity string         `json:"severity,omitempty"`
	Details  map[string]any `json:"details,omitempty"`
}

func triggerArgs(b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (any, error) {
	summary, source, severity := "", "", "error"
	var details *starlark.Dict
	var dedup starlark.Value = starlark.None
	if err := builtins.UnpackArgs(b.Name(), args, kw, "summary", &summary, "source", &source,
		"severity?", &severity, "details??", &details, "dedup_key?", &dedup); err != nil {
		return nil, err
	}
	if strings.TrimSpace(summary) == "" {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "summary", Err: errors.New("empty; say what is wrong, e.g. \"checkout failing for acme\"")}
	}
	if strings.TrimSpace(source) == "" {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "source", Err: errors.New("empty; name the affected system, e.g. a host name")}
	}
	if !slices.Contains(Severities, severity) {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "severity", Err: fmt.Errorf("%q: want one of %s", severity, strings.Join(Severities, ", "))}
	}
	out := map[string]any{"action": "trigger", "summary": clip(summary, maxSummary), "source": source, "severity": severity}
	if dedup != starlark.None {
		key, ok := dedup.(starlark.String)
		if !ok {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "dedup_key", Err: fmt.Errorf("got %s, want string", dedup.Type())}
		}
		if err := checkKey(string(key)); err != nil {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "dedup_key", Err: err}
		}
		out["dedup_key"] = string(key)
	}
	if details != nil && details.Len() > 0 {
		v, err := builtins.ToJSON(details)
		if err != nil {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "details", Err: err}
		}
		out["details"] = v
	}
	return out, nil
}

func keyArgs(action string) func(*starlark.Builtin, starlark.Tuple, []starlark.Tuple) (any, error) {
	return func(b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (any, error) {
		var dedup string
		if err := builtins.UnpackArgs(b.Name(), args, kw, "dedup_key", &dedup); err != nil {
			return nil, err
		}
		if err := checkKey(dedup); err != nil {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "dedup_key", Err: err}
		}
		return map[string]any{"action": action, "dedup_key": dedup}, nil
	}
}

func checkKey(k string) error {
	switch n := utf8.RuneCountInString(k); {
	case strings.TrimSpace(k) == "":
		return errors.New("empty; want the key the alert was triggered with")
	case n > maxDedupKey:
		return fmt.Errorf("%d characters; PagerDuty takes at most %d", n, maxDedupKey)
	}
	return nil
}

func send(ctx context.Context, env builtins.Env, c *Client, e event) (any, error) {
	if c.cfg.RoutingKey == "" {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "pagerduty.%s: node %s has no routing_key (integrations: pagerduty: in its --config file)", e.Action, env.Node())
	}
	if e.Action == "trigger" && e.DedupKey == "" {
		// the same for every attempt, and for the step executed again
		// after a crash: PagerDuty adds them all to one alert
		e.DedupKey = builtins.StepFrom(ctx).Key
	}
	res, err := c.send(ctx, e)
	var se *builtins.StepError
	switch {
	case errors.As(err, &se) && se.Code == Code && !se.Retryable:
		// PagerDuty refused the event (HTTP 400): a value the script can
		// test, as an HTTP 404 is a response; only what it cannot handle
		// (PagerDuty unreachable) fails the run.
		return map[string]any{"ok": false, "dedup_key": e.DedupKey, "error": se.Message}, nil
	case err != nil:
		return nil, err
	}
	res["ok"] = true
	return res, nil
}

// wire is an event as the Events API v2 takes it.
type wire struct {
	RoutingKey string       `json:"routing_key"`
	Action     string       `json:"event_action"`
	DedupKey   string       `json:"dedup_key,omitempty"`
	Payload    *wirePayload `json:"payload,omitempty"`
	Client     string       `json:"client,omitempty"`
}

type wirePayload struct {
	Summary  string         `json:"summary"`
	Source   string         `json:"source"`
	Severity string         `json:"severity"`
	Details  map[string]any `json:"custom_details,omitempty"`
}

// answer is the Events API's answer: {"status": "success", "message":
// "Event processed", "dedup_key": "..."}, or {"status": "invalid event",
// "message": "Event object is invalid", "errors": [...]}.
type answer struct {
	Status   string   `json:"status"`
	Message  string   `json:"message"`
	DedupKey string   `json:"dedup_key"`
	Errors   []string `json:"errors"`
}

// send posts e to the Events API. A failure is a *builtins.StepError.
func (c *Client) send(ctx context.Context, e event) (map[string]any, error) {
	what := "pagerduty." + e.Action
	if e.DedupKey != "" {
		what += " " + e.DedupKey
	}
	w := wire{RoutingKey: c.cfg.RoutingKey, Action: e.Action, DedupKey: e.DedupKey}
	if e.Action == "trigger" {
		w.Client = "Drover"
		w.Payload = &wirePayload{Summary: e.Summary, Source: e.Source, Severity: e.Severity, Details: e.Details}
	}
	body, err := json.Marshal(w)
	if err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "%s: %v", what, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.enqueue, bytes.NewReader(body))
	if err != nil {
		return nil, builtins.Errorf(builtins.CodeInternal, "%s: %v", what, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, builtins.TransportError(ctx, fmt.Sprintf("%s: events API at %s", what, c.host), errors.New(builtins.Redact(err.Error())))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var a answer
	json.Unmarshal(raw, &a)
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		key := a.DedupKey
		if key == "" {
			key = e.DedupKey
		}
		status := a.Status
		if status == "" {
			status = "success"
		}
		return map[string]any{"dedup_key": key, "status": status}, nil
	case s == http.StatusTooManyRequests:
		return nil, builtins.Retryable(CodeRateLimited, "%s: rate limited by PagerDuty (HTTP 429)", what)
	case s >= 500:
		return nil, builtins.Retryable(builtins.CodeTransport, "%s: events API at %s answered HTTP %d", what, c.host, s)
	default:
		return nil, builtins.Errorf(Code, "%s: PagerDuty refused the event (HTTP %d): %s", what, s, builtins.Redact(explain(a, raw)))
	}
}

// explain is what an error answer says: its status, message and errors.
func explain(a answer, raw []byte) string {
	if a.Status == "" && a.Message == "" && len(a.Errors) == 0 {
		return clip(strings.TrimSpace(string(raw)), 300)
	}
	parts := []string{a.Status}
	if a.Message != "" {
		parts = append(parts, a.Message)
	}
	parts = append(parts, a.Errors...)
	return strings.Join(parts, ": ")
}

// CheckRule implements alert.RuleChecker: a rule that pages needs a node
// with a routing key, and PagerDuty's severities.
func (c *Client) CheckRule(r alert.Rule) error {
	switch {
	case c.cfg.RoutingKey == "":
		return &alert.FieldError{Field: "notify", Err: errors.New("pagerduty has no routing_key on this node (integrations: pagerduty: in its --config file)")}
	case r.Severity != "" && !slices.Contains(Severities, r.Severity):
		return &alert.FieldError{Field: "severity", Err: fmt.Errorf("%q: want one of %s", r.Severity, strings.Join(Severities, ", "))}
	case r.Channel != "":
		return &alert.FieldError{Field: "channel", Err: errors.New("applies to slack, not pagerduty")}
	}
	return nil
}

// Notify implements alert.Notifier: an alert triggers with its dedup key
// (so several nodes raising it make one PagerDuty alert), its resolution
// resolves it.
func (c *Client) Notify(ctx context.Context, a alert.Alert) error {
	if c.cfg.RoutingKey == "" {
		return builtins.Errorf(builtins.CodeBadArgs, "pagerduty: no routing_key on this node")
	}
	e := event{Action: "resolve", DedupKey: a.DedupKey}
	if !a.Resolved {
		sev := a.Rule.Severity
		if sev == "" {
			sev = "error"
		}
		details := make(map[string]any, len(a.Details))
		for k, v := range a.Details {
			details[k] = v
		}
		source := a.Subject
		if source == "" {
			source = "drover"
		}
		e = event{Action: "trigger", DedupKey: a.DedupKey, Summary: clip(a.Summary, maxSummary), Source: source, Severity: sev, Details: details}
	}
	_, err := c.send(ctx, e)
	return err
}

// clip cuts s to at most n characters, marking the cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
