package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
)

// TestIntegrationsTour is docs/integrations.md's tour as a new user runs it:
// an engine with scripts/examples/integrations/drover.yaml, the order
// script deployed with ctl, an order published to the queue the
// configuration binds to it. The run reads PostgreSQL, caches in memcached
// and publishes its confirmation to RabbitMQ; its export then replays with
// ctl on a fresh data dir with no configuration at all, so with no way to
// reach any of them, to the same result.
func TestIntegrationsTour(t *testing.T) {
	url := os.Getenv("DROVER_TEST_AMQP")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatalf("the tour needs RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"drover-example-orders", "drover-example-confirmations"} {
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		ch.QueuePurge(q, false)
	}
	t.Setenv("RABBIT_PASSWORD", "guest")
	config, err := filepath.Abs("../scripts/examples/integrations/drover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := startEngine(t, t.TempDir(), "--config", config)
	env := []string{"DROVER_URL=" + eng.url}
	if out, errOut, code := ctl(t, env, "deploy", "order", "scripts/examples/integrations/order.star"); code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	customer := "tour-" + time.Now().Format("150405.000000")
	if err := ch.PublishWithContext(ctx, "", "drover-example-orders", false, false, amqp091.Publishing{
		MessageId: customer, Body: []byte(`{"customer": "` + customer + `", "sku": "a-1", "qty": 2}`),
		Headers: amqp091.Table{"x-customer": customer}}); err != nil {
		t.Fatal(err)
	}
	c := client.New(eng.url)
	var run api.Run
	for {
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second) // one slow answer must not spend the budget
		runs, err := c.List(lctx, api.ListFilter{Script: "order", Attrs: map[string]string{"customer": customer}})
		lcancel()
		if err == nil && len(runs) == 1 && runs[0].Status == api.StatusCompleted {
			run = runs[0]
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no completed run: %v %+v\n%s", err, runs, eng.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	end, err := c.Wait(ctx, run.ID)
	if err != nil || string(end.Result) != `{"customer":"`+customer+`","tier":"gold","total":180}` {
		t.Fatalf("run: %v %s", err, end.Result)
	}
	d, ok, err := ch.Get("drover-example-confirmations", true)
	if err != nil || !ok || string(d.Body) != `{"customer":"`+customer+`","total":180}` {
		t.Fatalf("confirmation: %v %v %s", ok, err, d.Body)
	}

	// Export, then replay where nothing is configured.
	export, errOut, code := ctl(t, env, "runs", "export", run.ID)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(file, []byte(export), 0o644); err != nil {
		t.Fatal(err)
	}
	offline := []string{"DROVER_URL=", "DROVER_CONFIG=", "DROVER_DATA=" + t.TempDir(), "DROVER_BACKGROUND=off"}
	out, errOut, code := ctl(t, offline, "replay", "--from", file, "--json")
	var rep struct {
		Matches bool `json:"matches"`
		Steps   int  `json:"steps"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || !rep.Matches || rep.Steps < 3 {
		t.Fatalf("offline replay: exit %d %+v\n%s%s", code, rep, out, errOut)
	}
	if !strings.Contains(export, `"sql.query"`) || !strings.Contains(export, `"cache.get"`) || !strings.Contains(export, `"amqp.publish"`) {
		t.Fatalf("the export lacks the integrations' steps:\n%s", export)
	}
}
