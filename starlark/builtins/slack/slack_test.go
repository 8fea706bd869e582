package slack_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/slack"
	"github.com/droverhq/drover/starlark/builtins/slack/slacktest"
)

// The tests run against slacktest's stand-in of Slack's documented Web API
// and incoming webhooks: no real Slack endpoint is reachable here.

const token = "xoxb-1234-drover-t0ken-5678"

func open(t *testing.T, cfg slack.Config) (*builtins.Registry, *builtinstest.Runtime, builtins.IntegrationStatus) {
	t.Helper()
	return builtinstest.OpenIntegration(t, slack.Register, &cfg)
}

// stepErr returns the step error of the last call rt made.
func stepErr(t *testing.T, rt *builtinstest.Runtime) *builtins.StepError {
	t.Helper()
	calls := rt.Calls()
	if len(calls) == 0 || calls[len(calls)-1].Err == nil {
		t.Fatalf("no failed call: %+v", calls)
	}
	return calls[len(calls)-1].Err
}

// noSecret fails t if text holds the token or the webhook's secret path.
func noSecret(t *testing.T, srv *slacktest.Server, text string) {
	t.Helper()
	for _, s := range []string{token, srv.WebhookURL(), "whsecret7Q2rXk"} {
		if strings.Contains(text, s) {
			t.Errorf("a secret leaks: %q holds %q", text, s)
		}
	}
}

func TestPostWithToken(t *testing.T) {
	srv := slacktest.NewServer(token)
	defer srv.Close()
	r, rt, st := open(t, slack.Config{Token: token, APIURL: srv.APIURL()})
	if st.State != builtins.StateOK {
		t.Fatalf("check: %+v", st)
	}
	v, err := rt.Eval(r, `slack.post("#ops", "deploy *done*", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "deploy *done*"}}, {"type": "divider"}])`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"channel": "C0OPS", "ok": True, "ts": "1700000000.000001"}`; v.String() != want {
		t.Errorf("slack.post = %s, want %s", v, want)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Via != "chat.postMessage" || m.Channel != "#ops" || m.Text != "deploy *done*" {
		t.Errorf("message %+v", m)
	}
	if m.Authorization != "Bearer "+token || m.FormToken != "" {
		t.Errorf("token sent as Authorization %q, form %q; want the bearer header only", m.Authorization, m.FormToken)
	}
	if want := `[{"text":{"text":"deploy *done*","type":"mrkdwn"},"type":"section"},{"type":"divider"}]`; m.Blocks != want {
		t.Errorf("blocks sent %s\nwant %s", m.Blocks, want)
	}
	if got := rt.Calls()[0].Args; got != `{"blocks":[{"text":{"text":"deploy *done*","type":"mrkdwn"},"type":"section"},{"type":"divider"}],"channel":"#ops","text":"deploy *done*"}` {
		t.Errorf("journaled args %s", got)
	}
	if v, err := rt.Eval(r, `slack.post("C0GENERAL", "by id")`, nil); err != nil || !strings.Contains(v.String(), `"C0GENERAL"`) {
		t.Errorf("post by channel ID: %v, %v", v, err)
	}

	step, _ := r.Lookup("slack.post")
	if got, want := step.Target(rt.Env, nil), "slack "+strings.TrimPrefix(srv.URL, "http://"); got != want {
		t.Errorf("target %q, want %q", got, want)
	}
	if d := step.Resources(nil); len(d) != 1 || d[0] != (builtins.Demand{Resource: slack.Resource, Amount: 1}) {
		t.Errorf("demands %v", d)
	}
	if step.Policy().MaxAttempts < 2 {
		t.Errorf("slack.post is not retried: %+v", step.Policy())
	}
}

// TestDeclaresItsRate: a node that can post declares chat.postMessage's
// rate as a cluster-wide rate resource; one that cannot declares nothing.
func TestDeclaresItsRate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  slack.Config
		want int
	}{
		{"token", slack.Config{Token: token}, 1},
		{"webhook", slack.Config{WebhookURL: "https://hooks.slack.com/services/T/B/x"}, 1},
		{"none", slack.Config{}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := slack.Integration.Open(context.Background(), &tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			decls := inst.(builtins.ResourceDeclarer).Resources()
			if len(decls) != tt.want {
				t.Fatalf("declares %v", decls)
			}
			if tt.want == 0 {
				return
			}
			spec, err := meter.ParseResource(decls[0])
			if err != nil {
				t.Fatal(err)
			}
			if spec.Name != slack.Resource || spec.Kind != meter.KindRate || spec.Rate != 1 || spec.Burst < 1 || spec.Scope != meter.ScopeCluster {
				t.Errorf("declared %+v, want slack at 1/s, cluster-wide", spec)
			}
		})
	}
}

func TestWebhook(t *testing.T) {
	srv := slacktest.NewServer(token)
	defer srv.Close()
	r, rt, st := open(t, slack.Config{WebhookURL: srv.WebhookURL()})
	if st.State != builtins.StateOK {
		t.Fatalf("check: %+v", st)
	}
	v, err := rt.Eval(r, `slack.post("#ops", "hello", blocks=[{"type": "divider"}])`, nil)
	if err != nil || v.String() != `{"ok": True}` {
		t.Fatalf("slack.post = %v, %v", v, err)
	}
	if m := srv.Messages(); len(m) != 1 || m[0].Via != "webhook" || m[0].Text != "hello" || m[0].Blocks != `[{"type":"divider"}]` || m[0].Authorization != "" {
		t.Errorf("messages %+v", m)
	}
	step, _ := r.Lookup("slack.post")
	if got, want := step.Target(rt.Env, nil), "slack "+strings.TrimPrefix(srv.URL, "http://"); got != want {
		t.Errorf("target %q, want %q", got, want)
	}

	// a webhook Slack no longer knows: its error string, a value
	_, rt2, _ := open(t, slack.Config{WebhookURL: srv.URL + "/services/T0/B0/revokedsecret99"})
	v, err = rt2.Eval(r, `slack.post("#ops", "hello")`, nil)
	if err != nil || !strings.Contains(v.String(), `"ok": False`) || !strings.Contains(v.String(), "no_service (HTTP 404)") || strings.Contains(v.String(), "revokedsecret99") {
		t.Errorf("revoked webhook: %v, %v", v, err)
	}
}

// TestSlackRefuses: Slack's {"ok": false, "error": ...} is a value the
// script can test, with Slack's error string, not retried.
func TestSlackRefuses(t *testing.T) {
	srv := slacktest.NewServer(token)
	defer srv.Close()
	r, rt, _ := open(t, slack.Config{Token: token, APIURL: srv.APIURL()})
	before := srv.Requests()
	v, err := rt.Eval(r, `slack.post("#nowhere", "hello")`, nil)
	if want := `{"error": "slack.post to #nowhere: Slack answered channel_not_found", "ok": False}`; err != nil || v.String() != want {
		t.Fatalf("slack.post to a channel that does not exist = %v, %v; want %s", v, err, want)
	}
	if n := srv.Requests() - before; n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	noSecret(t, srv, v.String())
}

// TestRateLimited: HTTP 429 is waited out within the attempt, for as long
// as Retry-After asks, when the attempt's deadline allows; otherwise it
// fails retryable, for the engine's next attempt.
func TestRateLimited(t *testing.T) {
	srv := slacktest.NewServer(token)
	defer srv.Close()
	for _, mode := range []struct {
		name string
		cfg  slack.Config
	}{
		{"token", slack.Config{Token: token, APIURL: srv.APIURL()}},
		{"webhook", slack.Config{WebhookURL: srv.WebhookURL()}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			r, rt, _ := open(t, mode.cfg)
			before, start := srv.Requests(), time.Now()
			srv.FailNext(slacktest.Failure{Status: 429, RetryAfter: "1"})
			if _, err := rt.Eval(r, `slack.post("#ops", "after a wait")`, nil); err != nil {
				t.Fatal(err)
			}
			if waited := time.Since(start); waited < time.Second {
				t.Errorf("retried after %s, before Retry-After's 1s", waited)
			}
			if n := srv.Requests() - before; n != 2 {
				t.Errorf("%d requests, want 2", n)
			}

			before, start = srv.Requests(), time.Now()
			srv.FailNext(slacktest.Failure{Status: 429, RetryAfter: "120"}) // longer than the attempt's 30 s
			if _, err := rt.Eval(r, `slack.post("#ops", "too long a wait")`, nil); err == nil {
				t.Fatal("no error")
			}
			se := stepErr(t, rt)
			if se.Code != slack.CodeRateLimited || !se.Retryable || !strings.Contains(se.Message, "retry after 2m0s") {
				t.Errorf("error %+v", se)
			}
			if n := srv.Requests() - before; n != 1 || time.Since(start) > 10*time.Second {
				t.Errorf("%d requests in %s, want 1 at once", n, time.Since(start))
			}
			noSecret(t, srv, se.Message)
		})
	}
}

// TestServerErrors: Slack answering 5xx is retryable (transport); the
// message says so.
func TestServerErrors(t *testing.T) {
	srv := slacktest.NewServer(token)
	defer srv.Close()
	for _, cfg := range []slack.Config{{Token: token, APIURL: srv.APIURL()}, {WebhookURL: srv.WebhookURL()}} {
		r, rt, _ := open(t, cfg)
		srv.FailNext(slacktest.Failure{Status: 503, Body: "<html>down</html>"})
		if _, err := rt.Eval(r, `slack.post("#ops", "x")`, nil); err == nil {
			t.Fatal("no error")
		}
		if se := stepErr(t, rt); se.Code != builtins.CodeTransport || !se.Retryable || !strings.Contains(se.Message, "503") {
			t.Errorf("503: %+v", se)
		}
	}
}

// TestUnreachable: a Slack that cannot be reached fails with transport,
// retryable, on the target the node's breaker counts; the check fails; no
// secret shows.
func TestUnreachable(t *testing.T) {
	srv := slacktest.NewServer(token) // for its webhook's secret, in noSecret
	srv.Close()
	for _, tt := range []struct {
		name string
		cfg  slack.Config
	}{
		{"token", slack.Config{Token: token, APIURL: srv.APIURL()}},
		{"webhook", slack.Config{WebhookURL: srv.WebhookURL()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, rt, st := open(t, tt.cfg)
			if tt.name == "token" && (st.State != builtins.StateFailing || !strings.Contains(st.Error, "auth.test at "+strings.TrimPrefix(srv.URL, "http://"))) {
				t.Errorf("check: %+v", st)
			}
			noSecret(t, srv, st.Error)
			if _, err := rt.Eval(r, `slack.post("#ops", "x")`, nil); err == nil {
				t.Fatal("no error")
			}
			se := stepErr(t, rt)
			if se.Code != builtins.CodeTransport || !se.Retryable || !strings.Contains(se.Message, "slack.post to #ops: ") || !strings.Contains(se.Message, "connection refused") {
				t.Errorf("error %+v", se)
			}
			noSecret(t, srv, se.Message)
			step, _ := r.Lookup("slack.post")
			if got, want := step.Target(rt.Env, nil), "slack "+strings.TrimPrefix(srv.URL, "http://"); got != want {
				t.Errorf("target %q, want %q", got, want)
			}
		})
	}
}

func TestStates(t *testing.T) {
	srv := slacktest.NewServer(token)
	defer srv.Close()
	if _, _, st := open(t, slack.Config{Token: "xoxb-wrong-token-0000", APIURL: srv.APIURL()}); st.State != builtins.StateFailing ||
		!strings.Contains(st.Error, "invalid_auth") || strings.Contains(st.Error, "xoxb-wrong-token-0000") {
		t.Errorf("wrong token: %+v", st)
	}
	r, rt, st := open(t, slack.Config{})
	if st.State != builtins.StateUnconfigured {
		t.Errorf("none: %+v", st)
	}
	if _, err := rt.Eval(r, `slack.post("#ops", "x")`, nil); err == nil || stepErr(t, rt).Code != builtins.CodeBadArgs {
		t.Errorf("post without configuration: %v", err)
	}
	if _, _, st := open(t, slack.Config{APIURL: "slack.com/api"}); st.State != builtins.StateFailing || !strings.Contains(st.Error, `api_url "slack.com/api/": want an http(s) URL`) {
		t.Errorf("bad api_url: %+v", st)
	}
	if _, _, st := open(t, slack.Config{WebhookURL: "hooks.slack.com/services/T/B/badsecret42"}); st.State != builtins.StateFailing ||
		!strings.Contains(st.Error, "webhook_url: want") || strings.Contains(st.Error, "badsecret42") {
		t.Errorf("bad webhook_url: %+v", st)
	}
}

func TestBadCalls(t *testing.T) {
	r := builtinstest.NewRegistry(slack.Register)
	for _, c := range []struct{ src, want string }{
		{`slack.post("", "x")`, `slack.post: for parameter channel: empty; want a channel name or ID, e.g. "#ops" or "C0123456789"`},
		{`slack.post("#ops")`, `slack.post: missing argument for text`},
		{`slack.post("#ops", "")`, `slack.post: for parameter text: empty; give a text, or blocks`},
		{`slack.post("#ops", "x", blocks={"type": "divider"})`, `slack.post: for parameter blocks: got dict, want a list of Block Kit blocks (dicts)`},
		{`slack.post("#ops", "x", blocks=["divider"])`, `slack.post: for parameter blocks: blocks[0] is a string, want a dict such as {"type": "section", ...}`},
		{`slack.post("#ops", "x", blocks=[{"text": "y"}])`, `slack.post: for parameter blocks: blocks[0] has no "type" (e.g. "section", "header", "divider")`},
		{`slack.post("#ops", "x", blocks=[{"type": "divider"}] * 51)`, `slack.post: for parameter blocks: 51 blocks; Slack takes at most 50`},
		{`slack.post("#ops", "x", blocks=[{"type": lambda: 1}])`, `slack.post: for parameter blocks: builtins: value is not JSON: value[0]["type"] is a function, which has no JSON form`},
	} {
		builtinstest.CheckBadCall(t, r, c.src, c.want)
	}
	// blocks alone are a message
	srv := slacktest.NewServer(token)
	defer srv.Close()
	r, rt, _ := open(t, slack.Config{Token: token, APIURL: srv.APIURL()})
	if _, err := rt.Eval(r, `slack.post("#ops", "", blocks=[{"type": "divider"}])`, nil); err != nil {
		t.Error(err)
	}
}

// TestNotify: the instance is an alert.Notifier posting to the rule's
// channel, and checks the rules that name it.
func TestNotify(t *testing.T) {
	srv := slacktest.NewServer(token)
	defer srv.Close()
	inst, err := slack.Integration.Open(context.Background(), &slack.Config{Token: token, APIURL: srv.APIURL()})
	if err != nil {
		t.Fatal(err)
	}
	n := inst.(*slack.Client)
	rule := alert.Rule{Name: "checkout failed", When: alert.WhenRunFailed, Notify: "slack", Channel: "#ops"}
	if err := n.CheckRule(rule); err != nil {
		t.Fatal(err)
	}
	a := alert.Alert{Rule: rule, Subject: "checkout", Summary: "[checkout failed] script checkout: run r1 failed: <boom> & more",
		Details: map[string]string{"run": "r1", "script": "checkout"}, DedupKey: "drover/checkout failed/checkout"}
	if err := n.Notify(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	a.Resolved = true
	if err := n.Notify(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || msgs[0].Channel != "#ops" || !strings.HasPrefix(msgs[0].Text, ":rotating_light: [checkout failed]") ||
		!strings.Contains(msgs[0].Text, "&lt;boom&gt; &amp; more") || !strings.HasPrefix(msgs[1].Text, ":white_check_mark:") {
		t.Fatalf("messages %+v", msgs)
	}
	var blocks []map[string]any
	if err := json.Unmarshal([]byte(msgs[0].Blocks), &blocks); err != nil || len(blocks) != 2 || !strings.Contains(msgs[0].Blocks, `"*run*\nr1"`) {
		t.Errorf("blocks %s (%v)", msgs[0].Blocks, err)
	}

	a.Rule.Channel = "#nowhere"
	var se *builtins.StepError
	if err := n.Notify(context.Background(), a); !errors.As(err, &se) || se.Code != slack.Code || se.Retryable {
		t.Errorf("notify to a missing channel: %v", err)
	}
	for _, tt := range []struct {
		rule  alert.Rule
		field string
	}{
		{alert.Rule{Notify: "slack"}, "channel"},
		{alert.Rule{Notify: "slack", Channel: "#ops", Severity: "critical"}, "severity"},
	} {
		var fe *alert.FieldError
		if err := n.CheckRule(tt.rule); !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("CheckRule(%+v) = %v, want a problem with %s", tt.rule, err, tt.field)
		}
	}
	none, _ := slack.Integration.Open(context.Background(), &slack.Config{})
	if err := none.(*slack.Client).CheckRule(rule); err == nil || !strings.Contains(err.Error(), "no token or webhook_url") {
		t.Errorf("CheckRule without configuration: %v", err)
	}
}
