package engine

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/droverhq/drover/alert"
	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/starlark/builtins/slack"
	"github.com/droverhq/drover/starlark/builtins/slack/slacktest"
)

// TestAlertRunFailed: an alert rule in the node's configuration posts to
// Slack (a stand-in of its Web API) when a run of its script fails, without
// the script doing anything; a run of another script does not alert.
func TestAlertRunFailed(t *testing.T) {
	sl := slacktest.NewServer("xoxb-test")
	defer sl.Close()
	var execs atomic.Int64
	reg := logRegistry(&execs)
	slack.Register(reg)
	n := newTestNode(t, Options{Registry: reg,
		Integrations: map[string]any{"slack": &slack.Config{Token: "xoxb-test", APIURL: sl.APIURL()}},
		Alerts:       alert.Config{{Name: "checkout failed", When: alert.WhenRunFailed, Script: "t", Notify: "slack", Channel: "#ops"}}})
	end := runScript(t, n, "def main(input):\n    fail(\"card declined\")\n", "")
	if end.Status != api.StatusFailed {
		t.Fatalf("run: %s", end.Status)
	}
	bustest.PollUntil(t, func() bool { return len(sl.Messages()) > 0 })
	m := sl.Messages()[0]
	if m.ChannelID != "C0OPS" || !strings.Contains(m.Text, "checkout failed") || !strings.Contains(m.Text, "card declined") {
		t.Fatalf("message: %+v", m)
	}
}

// TestAlertRulesChecked: a rule naming a notifier the node does not have
// stops the node at start with a message naming the rule.
func TestAlertRulesChecked(t *testing.T) {
	var execs atomic.Int64
	_, err := NewNode(t.Context(), Options{Name: "a1", DataDir: t.TempDir(), Registry: logRegistry(&execs),
		Alerts: alert.Config{{Name: "lost", When: alert.WhenNodeLost, Notify: "pagerduty"}}})
	if err == nil || !strings.Contains(err.Error(), `"lost"`) || !strings.Contains(err.Error(), "pagerduty") {
		t.Fatalf("NewNode: %v", err)
	}
}
