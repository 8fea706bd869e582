package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/starlark/builtins"
	amqpbuiltin "github.com/droverhq/drover/starlark/builtins/amqp"
)

// TestAMQPTriggerStartsOneRunPerMessage: a queue bound to a deployed script
// starts one run per message, its body the input and a header an attribute;
// a message delivered again with the same id starts nothing more; a message
// that is not JSON is rejected, and the others go on.
func TestAMQPTriggerStartsOneRunPerMessage(t *testing.T) {
	url := envOr("DROVER_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatalf("the test RabbitMQ must be up: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := fmt.Sprintf("drover-trigger-%d", time.Now().UnixNano())
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)

	reg := builtins.Default.Clone()
	logs := &syncBuffer{}
	logger := zerolog.New(logs)
	n := newTestNode(t, Options{Registry: reg, Logger: &logger, Integrations: map[string]any{"amqp": &amqpbuiltin.Config{URL: url,
		Triggers: []amqpbuiltin.Trigger{{Queue: queue, Script: "orders", Attrs: map[string]string{"customer": "x-customer"}}}}}})
	ctx := context.Background()
	if _, err := n.Deploy(ctx, api.DeployRequest{Script: api.Script{Name: "orders", Main: "main.star", Files: map[string]string{"main.star": "def main(input):\n    return input[\"n\"] * 2\n"}}}); err != nil {
		t.Fatal(err)
	}
	publish := func(id, body string) {
		t.Helper()
		if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp091.Publishing{MessageId: id, Body: []byte(body), Headers: amqp091.Table{"x-customer": "acme"}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		publish(fmt.Sprintf("m-%d", i), fmt.Sprintf(`{"n": %d}`, i))
	}
	publish("m-3", `{"n": 3}`) // the same message again
	publish("bad", `not json`)
	publish("m-10", `{"n": 10}`)

	// Every message is acknowledged (or rejected) once its run is accepted.
	bustest.PollUntil(t, func() bool {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err == nil && q.Messages == 0
	})
	var runs []api.Run
	var listErr error
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, listErr = n.List(ctx, api.ListFilter{Script: "orders", Attrs: map[string]string{"customer": "acme"}, Limit: 100})
		done := listErr == nil && len(runs) >= 11
		for _, r := range runs {
			done = done && r.Status == api.StatusCompleted
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			// Seen under a full package run only: say what each filter finds.
			for _, f := range []api.ListFilter{{Script: "orders", Limit: 100}, {Attrs: map[string]string{"customer": "acme"}, Limit: 100}, {Limit: 100}} {
				l, err := n.List(ctx, f)
				t.Logf("diagnosis: List %+v: %d runs, %v", f, len(l), err)
			}
			var states []string
			for _, r := range runs {
				d, _ := n.Get(ctx, r.ID)
				states = append(states, fmt.Sprintf("%s %s (journal: %s, %d steps)", r.ID, r.Status, d.Status, len(d.Steps)))
			}
			t.Fatalf("after 10 s: %d runs, %v:\n%s", len(runs), listErr, strings.Join(states, "\n"))
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if len(runs) != 11 {
		t.Fatalf("%d runs for 11 distinct messages (one sent twice, one not JSON)", len(runs))
	}
	bustest.PollUntil(t, func() bool { return strings.Contains(logs.String(), "message rejected") })
	if !strings.Contains(logs.String(), `"key":"bad"`) || !strings.Contains(logs.String(), "its body is not JSON") {
		t.Fatalf("the rejected message is not logged as such:\n%s", logs.String())
	}
}

// TestTriggeredRunJournaledButNotIndexed: a message delivered again whose
// reserved run was journaled but not indexed (its node stopped in between)
// gets that run indexed and adopted, and it completes; no second run starts.
func TestTriggeredRunJournaledButNotIndexed(t *testing.T) {
	n := newTestNode(t, Options{Registry: builtins.Default.Clone()})
	ctx := context.Background()
	if _, err := n.Deploy(ctx, api.DeployRequest{Script: api.Script{Name: "orders", Main: "main.star", Files: map[string]string{"main.star": "def main(input):\n    return input * 2\n"}}}); err != nil {
		t.Fatal(err)
	}
	live, err := n.deployer.Live(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	// A node journals the run's start, and stops before indexing it.
	id := n.newRunID(time.Now())
	start := api.StartEntry{Run: id, Script: "orders", Hash: live.Program.Hash, Input: []byte("21"), Attrs: map[string]string{}, Coordinator: "gone", Time: time.Now().UTC(), Version: live.Deployment.Version}
	if err := n.journal.Begin(ctx, id, start, false, func(context.Context) error { return nil }, func(error) {}); err != nil {
		t.Fatal(err)
	}
	key := triggerKey("test queue", "m-1")
	if _, err := n.bus.Bucket(bus.TriggersBucket).Create(ctx, key, []byte(id)); err != nil {
		t.Fatal(err)
	}
	got, err := n.startTriggered(ctx, builtins.TriggeredRun{Script: "orders", Input: []byte("21"), Source: "test queue", Key: "m-1"})
	if err != nil || got != id {
		t.Fatalf("delivered again: %q %v, want the journaled run %s", got, err, id)
	}
	end, err := n.Wait(ctx, id)
	if err != nil || end.Status != api.StatusCompleted || string(end.Result) != "42" {
		t.Fatalf("the run: %v %+v", err, end)
	}
	if runs, _ := n.List(ctx, api.ListFilter{Script: "orders"}); len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
}

// TestTriggeredRunThatDidNotStart: a message delivered again whose reserved
// run was indexed but whose start entry was never journaled (the journal
// failed: runs.Store.NotStarted) starts that run now; it is not taken for
// started and acknowledged without a run.
func TestTriggeredRunThatDidNotStart(t *testing.T) {
	n := newTestNode(t, Options{Registry: builtins.Default.Clone()})
	ctx := context.Background()
	if _, err := n.Deploy(ctx, api.DeployRequest{Script: api.Script{Name: "orders", Main: "main.star", Files: map[string]string{"main.star": "def main(input):\n    return input * 2\n"}}}); err != nil {
		t.Fatal(err)
	}
	id := n.newRunID(time.Now())
	if _, err := n.bus.Bucket(bus.TriggersBucket).Create(ctx, triggerKey("q", "m-1"), []byte(id)); err != nil {
		t.Fatal(err)
	}
	n.runs.NotStarted(ctx, api.Run{ID: id, Script: "orders", Status: api.StatusRunning, Attrs: map[string]string{}, Coordinator: n.opts.Name, Started: time.Now().UTC()}, errors.New("nats: timeout"))
	got, err := n.startTriggered(ctx, builtins.TriggeredRun{Script: "orders", Input: []byte("21"), Source: "q", Key: "m-1"})
	if err != nil || got != id {
		t.Fatalf("delivered again: %q %v", got, err)
	}
	end, err := n.Wait(ctx, id)
	if err != nil || end.Status != api.StatusCompleted || string(end.Result) != "42" {
		t.Fatalf("the run: %v %+v", err, end)
	}
}

// TestRedeliveryOfAnEndedRunLeavesItEnded: a message delivered again while
// its run was being indexed takes the path that indexes a run from its
// journal (indexFromJournal). When the run has ended meanwhile, its index
// record stays completed, not running again (it did, under a full package
// run: the run stayed "running" in every listing).
func TestRedeliveryOfAnEndedRunLeavesItEnded(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	end := runScript(t, n, "def main(input):\n    return test.echo(1)\n", "")
	if end.Status != api.StatusCompleted {
		t.Fatalf("run: %+v", end.Error)
	}
	if err := n.indexFromJournal(context.Background(), end.ID); err != nil {
		t.Fatal(err)
	}
	rec, err := n.runs.Record(context.Background(), end.ID)
	if err != nil || rec.Status != api.StatusCompleted {
		t.Fatalf("after the redelivery: %v %+v", err, rec)
	}
}
