// Package slack is the slack integration: scripts post messages to Slack
// through the executing node's client (slack-go), with a bot token
// (chat.postMessage) or an incoming webhook.
//
//	slack.post(channel, text, blocks=None) -> {"channel": "C123", "ts": "1700000000.000100"}
//	                                          (webhook: {"ok": True})
//
// blocks is a list of Block Kit blocks (dicts), sent as they are. With a
// webhook, the message goes to the webhook's own channel: Slack ignores any
// other. Slack's own refusal (channel_not_found, not_in_channel,
// invalid_auth...) fails the step with code "slack", not retried; HTTP 429
// is retried (code "rate_limited"), waiting within the attempt for as long
// as Slack's Retry-After asks when the attempt's deadline allows; a Slack
// that cannot be reached fails with "transport", retried, and counts
// towards the node's circuit breaker of "slack <host>". The integration
// declares the cluster-wide rate resource "slack" (Slack's rate for
// chat.postMessage) that each call takes a unit of. Its instance is also an
// alert.Notifier.
//
//	integrations:
//	  slack:
//	    token: ${SLACK_BOT_TOKEN}        # xoxb-…, with the chat:write scope
//	    # or: webhook_url: ${SLACK_WEBHOOK_URL}
//
// No real Slack endpoint is reachable from this project's machines: the
// tests run against a local stand-in of Slack's documented Web API
// (auth.test, chat.postMessage) and incoming webhooks.
//
// Its init registers the integration into builtins.Default.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/starlark/builtins"
)

// Codes of the step errors of slack.post, beside builtins' own.
const (
	// Code is Slack's refusal of the message: its error string follows
	// ("channel_not_found"). Not retried.
	Code = "slack"
	// CodeRateLimited is HTTP 429 from Slack. Retried.
	CodeRateLimited = "rate_limited"
)

// Resource is the rate resource the integration declares and each
// slack.post takes one unit of.
const Resource = "slack"

// rate is Slack's limit on chat.postMessage: "Posting messages: 1 per
// second. Short bursts >1 allowed." per channel, within a workspace-wide
// limit (https://docs.slack.dev/reference/methods/chat.postMessage and
// https://docs.slack.dev/apis/web-api/rate-limits). A node declares its
// resources when it opens, before any script names a channel, so the one
// bucket holds every channel at that rate: never over Slack's limit on
// any channel, at the cost of pacing posts to different channels together
// (an operator's --resource slack=… overrides it). It is the cluster's:
// every node posts with the same token.
const rate = Resource + "=1/s,burst=3,scope=cluster"

// Config is the slack integration's configuration. Token wins when both
// it and WebhookURL are set.
type Config struct {
	// Token is a bot token (xoxb-…) with the chat:write scope.
	Token string `yaml:"token" secret:"true"`
	// WebhookURL is an incoming webhook's URL
	// (https://hooks.slack.com/services/…): it holds its own secret.
	WebhookURL string `yaml:"webhook_url" secret:"true"`
	// APIURL is the Web API's base URL, ending in "/" (default
	// https://slack.com/api/).
	APIURL string `yaml:"api_url"`
}

// Client is a node's slack instance.
type Client struct {
	cfg     Config
	http    *http.Client
	api     *slackapi.Client // nil without a token
	apiHost string
	hook    *url.URL // nil without a webhook
}

var (
	_ builtins.Checker          = (*Client)(nil)
	_ builtins.ResourceDeclarer = (*Client)(nil)
	_ io.Closer                 = (*Client)(nil)
	_ alert.Notifier            = (*Client)(nil)
	_ alert.RuleChecker         = (*Client)(nil)
)

// Integration is the slack integration.
var Integration = builtins.Define("slack", "Slack: post messages with a bot token or an incoming webhook", Config{APIURL: slackapi.APIURL}, open)

func open(_ context.Context, c Config) (*Client, error) {
	if c.APIURL == "" {
		c.APIURL = slackapi.APIURL
	}
	if !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
	api, err := url.Parse(c.APIURL)
	if err != nil || (api.Scheme != "http" && api.Scheme != "https") || api.Host == "" {
		return nil, fmt.Errorf("api_url %q: want an http(s) URL such as %s", c.APIURL, slackapi.APIURL)
	}
	cl := &Client{cfg: c, apiHost: api.Host, http: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// the URL is a secret: never quoted
			return nil, errors.New("webhook_url: want the incoming webhook's http(s) URL, https://hooks.slack.com/services/…")
		}
		cl.hook = u
	}
	if c.Token != "" {
		cl.api = slackapi.New(c.Token, slackapi.OptionAPIURL(c.APIURL), slackapi.OptionHTTPClient(bearer{cl.http, c.Token}))
	}
	return cl, nil
}

func init() {
	Integration.Steps = []*builtins.Step{{
		Name: "slack.post", Doc: "post a message to a Slack channel",
		Args: postArgs, Exec: builtins.Call("slack", post), Target: target, Resources: demand,
		Timeout: 30 * time.Second, Retry: retry,
	}}
	Register(builtins.Default)
}

// Register adds the slack integration and its builtin to r.
func Register(r *builtins.Registry) { r.MustRegisterIntegration(Integration) }

// retry spaces the attempts of slack.post wider than the default policy,
// for a Slack that is rate limiting or briefly down: 1 s, 3 s, 9 s.
var retry = builtins.RetryPolicy{MaxAttempts: 4, Initial: time.Second, Max: 30 * time.Second, Multiplier: 3}

// configured reports whether the node can post.
func (c *Client) configured() bool { return c.api != nil || c.hook != nil }

// Check calls auth.test with the token. A webhook alone has nothing to
// check without posting.
func (c *Client) Check(ctx context.Context) error {
	if !c.configured() {
		return fmt.Errorf("no token or webhook_url (add integrations: slack: token: ${SLACK_BOT_TOKEN} to the node's --config file): %w", builtins.ErrNotConfigured)
	}
	if c.api == nil {
		return nil
	}
	if _, err := c.api.AuthTestContext(ctx); err != nil {
		return fmt.Errorf("auth.test at %s: %v; is the token right, and Slack reachable?", c.apiHost, builtins.Redact(describe(err)))
	}
	return nil
}

// Resources declares the rate resource of chat.postMessage when the node
// can post (builtins.ResourceDeclarer): placement sends slack.post only to
// nodes that can, and no faster than Slack takes.
func (c *Client) Resources() []string {
	if !c.configured() {
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

// target is the breaker target of the node's Slack: the Web API's host,
// or the webhook's.
func target(env builtins.Env, _ json.RawMessage) string {
	c, err := builtins.Use[*Client](env, "slack")
	switch {
	case err != nil:
		return ""
	case c.api != nil:
		return "slack " + c.apiHost
	case c.hook != nil:
		return "slack " + c.hook.Host
	}
	return ""
}

// message is slack.post's journaled arguments.
type message struct {
	Channel string            `json:"channel"`
	Text    string            `json:"text"`
	Blocks  []json.RawMessage `json:"blocks,omitempty"`
}

// maxBlocks is Slack's limit of blocks in a message.
const maxBlocks = 50

func postArgs(b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (any, error) {
	var channel, text string
	var blocks starlark.Value = starlark.None
	if err := builtins.UnpackArgs(b.Name(), args, kw, "channel", &channel, "text", &text, "blocks?", &blocks); err != nil {
		return nil, err
	}
	if strings.TrimSpace(channel) == "" {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "channel", Err: errors.New(`empty; want a channel name or ID, e.g. "#ops" or "C0123456789"`)}
	}
	out := map[string]any{"channel": channel, "text": text}
	if blocks != starlark.None {
		list, ok := blocks.(*starlark.List)
		if !ok {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "blocks", Err: fmt.Errorf("got %s, want a list of Block Kit blocks (dicts)", blocks.Type())}
		}
		if list.Len() > maxBlocks {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "blocks", Err: fmt.Errorf("%d blocks; Slack takes at most %d", list.Len(), maxBlocks)}
		}
		v, err := builtins.ToJSON(list)
		if err != nil {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "blocks", Err: err}
		}
		for i, x := range v.([]any) {
			m, ok := x.(map[string]any)
			if !ok {
				return nil, &builtins.ArgError{Func: b.Name(), Param: "blocks", Err: fmt.Errorf("blocks[%d] is a %s, want a dict such as {\"type\": \"section\", ...}", i, list.Index(i).Type())}
			}
			if t, _ := m["type"].(string); t == "" {
				return nil, &builtins.ArgError{Func: b.Name(), Param: "blocks", Err: fmt.Errorf(`blocks[%d] has no "type" (e.g. "section", "header", "divider")`, i)}
			}
		}
		out["blocks"] = v
	}
	if strings.TrimSpace(text) == "" && blocks == starlark.None {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "text", Err: errors.New("empty; give a text, or blocks")}
	}
	return out, nil
}

func post(ctx context.Context, env builtins.Env, c *Client, m message) (any, error) {
	if !c.configured() {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "slack.post: node %s has no Slack token or webhook_url (integrations: slack: in its --config file)", env.Node())
	}
	return refusalAsValue(c.post(ctx, m))
}

// refusalAsValue makes Slack's refusal of a post (channel_not_found,
// invalid_auth: code slack, not retryable) a value the script can test,
// {"ok": False, "error": …}, as an HTTP 404 is a response: only what a
// script cannot handle (Slack unreachable, still rate limiting after the
// retries) fails the run. A post Slack took is {"ok": True, …}.
func refusalAsValue(res map[string]any, err error) (any, error) {
	var se *builtins.StepError
	if errors.As(err, &se) && se.Code == Code && !se.Retryable {
		return map[string]any{"ok": false, "error": se.Message}, nil
	}
	if err != nil {
		return nil, err
	}
	res["ok"] = true
	return res, nil
}

// post sends m with the token, else the webhook. A failure is a
// *builtins.StepError.
func (c *Client) post(ctx context.Context, m message) (map[string]any, error) {
	what := "slack.post"
	if m.Channel != "" {
		what += " to " + m.Channel
	}
	for waits := 0; ; waits++ {
		var res map[string]any
		var err error
		if c.api != nil {
			res, err = c.postMessage(ctx, m)
		} else {
			res, err = c.postWebhook(ctx, m)
		}
		if err == nil {
			return res, nil
		}
		var rl *rateLimited
		if !errors.As(err, &rl) {
			return nil, c.failure(ctx, what, err)
		}
		if waits < 3 && waitFits(ctx, rl.after) {
			t := time.NewTimer(rl.after)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return nil, builtins.TransportError(ctx, what, err)
			}
		}
		return nil, builtins.Retryable(CodeRateLimited, "%s: rate limited by Slack (HTTP 429); it asks to retry after %s", what, rl.after)
	}
}

// waitFits reports whether the attempt's deadline leaves room to wait d
// and send again.
func waitFits(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) > d+2*time.Second
}

// rateLimited is HTTP 429, with how long Slack asks to wait.
type rateLimited struct{ after time.Duration }

func (e *rateLimited) Error() string { return "rate limited; retry after " + e.after.String() }

// retryAfter reads a Retry-After header in seconds; Slack sends one with
// every 429. Without one, or 0, wait a second.
func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return time.Second
}

// postMessage calls chat.postMessage.
func (c *Client) postMessage(ctx context.Context, m message) (map[string]any, error) {
	opts := []slackapi.MsgOption{slackapi.MsgOptionText(m.Text, false)}
	if len(m.Blocks) > 0 {
		blocks := make([]slackapi.Block, len(m.Blocks))
		for i, b := range m.Blocks {
			blocks[i] = rawBlock(b)
		}
		opts = append(opts, slackapi.MsgOptionBlocks(blocks...))
	}
	channel, ts, err := c.api.PostMessageContext(ctx, m.Channel, opts...)
	if err != nil {
		var rl *slackapi.RateLimitedError
		var sc slackapi.StatusCodeError
		switch {
		case errors.As(err, &rl):
			return nil, &rateLimited{after: max(rl.RetryAfter, time.Second)}
		case errors.As(err, &sc) && sc.Code == http.StatusTooManyRequests:
			return nil, &rateLimited{after: time.Second}
		}
		return nil, err
	}
	return map[string]any{"channel": channel, "ts": ts}, nil
}

// postWebhook posts m to the incoming webhook. It speaks HTTP itself,
// with slack-go's message type, because slack-go's PostWebhook drops the
// body of an error answer, which holds Slack's error string
// ("invalid_payload", "no_service", "channel_is_archived").
func (c *Client) postWebhook(ctx context.Context, m message) (map[string]any, error) {
	msg := slackapi.WebhookMessage{Text: m.Text}
	if len(m.Blocks) > 0 {
		msg.Blocks = &slackapi.Blocks{}
		for _, b := range m.Blocks {
			msg.Blocks.BlockSet = append(msg.Blocks.BlockSet, rawBlock(b))
		}
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "slack.post: blocks: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.hook.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch text := strings.TrimSpace(string(answer)); {
	case resp.StatusCode == http.StatusOK:
		return map[string]any{"ok": true}, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, &rateLimited{after: retryAfter(resp.Header.Get("Retry-After"))}
	default:
		return nil, &webhookError{status: resp.StatusCode, text: text}
	}
}

// webhookError is a webhook's error answer: Slack's error string in the body.
type webhookError struct {
	status int
	text   string
}

func (e *webhookError) Error() string {
	if e.text == "" {
		return fmt.Sprintf("HTTP %d", e.status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.text, e.status)
}

// retryableErrors are Slack error strings that say Slack could not take
// the message for now, not that it refused it.
var retryableErrors = map[string]bool{"ratelimited": true, "service_unavailable": true}

// failure is the step error of a failed call: Slack's refusal is final
// (code slack), an answer 5xx or no answer retryable (transport).
func (c *Client) failure(ctx context.Context, what string, err error) *builtins.StepError {
	var se slackapi.SlackErrorResponse
	var sc slackapi.StatusCodeError
	var we *webhookError
	switch {
	case ctx.Err() != nil:
		return builtins.TransportError(ctx, what, err)
	case errors.As(err, &se):
		return &builtins.StepError{Code: Code, Retryable: retryableErrors[se.Err], Message: fmt.Sprintf("%s: Slack answered %s", what, builtins.Redact(se.Err))}
	case errors.As(err, &sc):
		if sc.Code >= 500 {
			return builtins.Retryable(builtins.CodeTransport, "%s: Slack answered HTTP %d", what, sc.Code)
		}
		return builtins.Errorf(Code, "%s: Slack answered HTTP %d", what, sc.Code)
	case errors.As(err, &we):
		if we.status >= 500 {
			return builtins.Retryable(builtins.CodeTransport, "%s: Slack answered %s", what, builtins.Redact(we.Error()))
		}
		return builtins.Errorf(Code, "%s: Slack answered %s", what, builtins.Redact(we.Error()))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return builtins.TransportError(ctx, what, errors.New(builtins.Redact(describe(err))))
	}
	// an answer that is not Slack's JSON (a proxy's page)
	return builtins.Errorf(Code, "%s: unreadable answer from Slack: %s", what, builtins.Redact(describe(err)))
}

// describe is err without the URL a *url.Error quotes: a webhook's URL is
// a secret.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// rawBlock is a Block Kit block as the script wrote it, sent as it is.
type rawBlock json.RawMessage

// BlockType implements slackapi.Block.
func (b rawBlock) BlockType() slackapi.MessageBlockType {
	var t struct {
		Type string `json:"type"`
	}
	json.Unmarshal(b, &t)
	return slackapi.MessageBlockType(t.Type)
}

// ID implements slackapi.Block.
func (b rawBlock) ID() string {
	var t struct {
		ID string `json:"block_id"`
	}
	json.Unmarshal(b, &t)
	return t.ID
}

// MarshalJSON sends the block as the script wrote it.
func (b rawBlock) MarshalJSON() ([]byte, error) { return b, nil }

// bearer sends the token in the Authorization header, as Slack prefers
// (https://docs.slack.dev/authentication/tokens), rather than in the form
// body where slack-go puts it: out of request bodies, proxies' logs and
// debugging dumps.
type bearer struct {
	c     *http.Client
	token string
}

// Do implements slack-go's HTTP client.
func (b bearer) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		raw, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, err
		}
		form.Del("token")
		body := form.Encode()
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.c.Do(req)
}

// CheckRule implements alert.RuleChecker: a rule that notifies Slack needs
// a node that can post, and a channel unless it posts to a webhook.
func (c *Client) CheckRule(r alert.Rule) error {
	switch {
	case !c.configured():
		return &alert.FieldError{Field: "notify", Err: errors.New("slack has no token or webhook_url on this node (integrations: slack: in its --config file)")}
	case c.api != nil && strings.TrimSpace(r.Channel) == "":
		return &alert.FieldError{Field: "channel", Err: errors.New(`missing; slack posts with a token need one, e.g. channel: "#ops"`)}
	case r.Severity != "":
		return &alert.FieldError{Field: "severity", Err: errors.New("applies to pagerduty, not slack")}
	}
	return nil
}

// Notify implements alert.Notifier: it posts the alert to the rule's
// channel (or the webhook's), its details as the message's fields.
func (c *Client) Notify(ctx context.Context, a alert.Alert) error {
	if !c.configured() {
		return builtins.Errorf(builtins.CodeBadArgs, "slack: no token or webhook_url on this node")
	}
	icon := ":rotating_light:"
	if a.Resolved {
		icon = ":white_check_mark:"
	}
	text := icon + " " + a.Summary
	blocks := []map[string]any{{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": escape(clip(text, 3000))}}}
	if len(a.Details) > 0 {
		keys := make([]string, 0, len(a.Details))
		for k := range a.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var fields []map[string]any
		for _, k := range keys[:min(len(keys), 10)] { // Slack takes 10 fields a section
			fields = append(fields, map[string]any{"type": "mrkdwn", "text": "*" + escape(k) + "*\n" + escape(clip(a.Details[k], 1900))})
		}
		blocks = append(blocks, map[string]any{"type": "section", "fields": fields})
	}
	m := message{Channel: a.Rule.Channel, Text: escape(text)}
	for _, b := range blocks {
		raw, err := json.Marshal(b)
		if err != nil {
			return err
		}
		m.Blocks = append(m.Blocks, raw)
	}
	_, err := c.post(ctx, m)
	return err
}

// escape escapes the characters Slack's mrkdwn gives a meaning to
// (https://docs.slack.dev/messaging/formatting-message-text).
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = strings.ToValidUTF8(s[:n-3], "")
	return s + "…"
}
