package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
	amqpbuiltin "github.com/droverhq/drover/starlark/builtins/amqp"
)

// BenchmarkAMQPTrigger measures a queue trigger's throughput: b.N messages,
// published beforehand to a queue bound to a deployed one-step script,
// consumed by a standalone node until every run has ended (runs/s); and,
// in the same run, its floor: the same number of messages consumed and
// acknowledged by a plain amqp091 consumer with the same prefetch
// (floor-msgs/s). Under each sync policy.
func BenchmarkAMQPTrigger(b *testing.B) {
	url := envOr("DROVER_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
	conn, err := amqp091.Dial(url)
	if err != nil {
		b.Fatal("the benchmark needs RabbitMQ: ", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	const prefetch = 256
	fill := func(queue string, n int) {
		if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp091.Publishing{
				MessageId: fmt.Sprintf("%s-%d", queue, i), Body: []byte(fmt.Sprintf(`{"n": %d}`, i))}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, policy := range syncPolicies {
		mode := map[bool]string{true: "always", false: "interval"}[policy.Always]
		b.Run(mode, func(b *testing.B) {
			// The floor: a plain consumer acknowledging each message.
			floorQueue := fmt.Sprintf("drover-bench-floor-%d", time.Now().UnixNano())
			fill(floorQueue, b.N)
			defer ch.QueueDelete(floorQueue, false, false, false)
			fch, err := conn.Channel()
			if err != nil {
				b.Fatal(err)
			}
			fch.Qos(prefetch, 0, false)
			start := time.Now()
			deliveries, err := fch.Consume(floorQueue, "", false, false, false, false, nil)
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				d := <-deliveries
				d.Ack(false)
			}
			floor := float64(b.N) / time.Since(start).Seconds()
			fch.Close()

			// The trigger.
			var steps atomic.Int64
			reg := builtins.NewRegistry()
			reg.MustRegister(&builtins.Step{Name: "bench.count", Exec: func(context.Context, builtins.Env, json.RawMessage) (any, error) {
				steps.Add(1)
				return nil, nil
			}})
			queue := fmt.Sprintf("drover-bench-trigger-%d", time.Now().UnixNano())
			fill(queue, b.N)
			defer ch.QueueDelete(queue, false, false, false)
			ctx := context.Background()
			n := newTestNode(b, Options{Registry: reg, Sync: policy})
			if _, err := n.Deploy(ctx, api.DeployRequest{Script: api.Script{Name: "count", Main: "main.star", Files: map[string]string{"main.star": "def main(input):\n    bench.count()\n"}}}); err != nil {
				b.Fatal(err)
			}
			// A second node on the same data would hold the dir: open the
			// trigger on this node's own integrations instead.
			client, err := amqpbuiltin.Integration.Open(ctx, &amqpbuiltin.Config{URL: url, Triggers: []amqpbuiltin.Trigger{{Queue: queue, Script: "count", Prefetch: prefetch}}})
			if err != nil {
				b.Fatal(err)
			}
			tctx, stop := context.WithCancel(ctx)
			b.ResetTimer()
			start = time.Now()
			done := make(chan struct{})
			go func() { client.(builtins.Triggerer).Triggers(tctx, n.startTriggered); close(done) }()
			deadline := time.Now().Add(5 * time.Minute)
			for {
				n.mu.Lock()
				active := len(n.active)
				n.mu.Unlock()
				if steps.Load() >= int64(b.N) && active == 0 {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d runs after 5 minutes", steps.Load(), b.N)
				}
				time.Sleep(time.Millisecond) // polling interval
			}
			perSec := float64(b.N) / time.Since(start).Seconds()
			b.StopTimer()
			stop()
			<-done
			client.(interface{ Close() error }).Close()
			b.ReportMetric(perSec, "runs/s")
			b.ReportMetric(floor, "floor-msgs/s")
			b.ReportMetric(perSec/floor, "x-floor")
		})
	}
}
