package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/replay"
	"github.com/droverhq/drover/starlark/builtins"
)

// Values over the payload limit of the journal's messages (step arguments
// and results, a run's input and result of 1 MiB here) flow through a run,
// co-located and dispatched, and read back whole from the API, the runs
// index, an export and a pinned copy; replay answers them with no call.
func TestLargeValues(t *testing.T) {
	for _, dispatch := range []bool{false, true} {
		t.Run(map[bool]string{false: "colocated", true: "dispatched"}[dispatch], func(t *testing.T) {
			var execs atomic.Int64
			n := newTestNode(t, Options{Registry: testRegistry(&execs), AlwaysDispatch: dispatch})
			input, _ := json.Marshal(map[string]string{"doc": strings.Repeat("i", 1<<20)})
			end := runScript(t, n, `
def main(input):
    report = test.big(1048576)
    echoed = test.echo(input["doc"])
    return {"report": report, "n": len(echoed)}
`, string(input))
			if end.Status != api.StatusCompleted || len(end.Result) < 1<<20 || end.ResultLeftOut {
				t.Fatalf("run: %s %d-byte result %+v", end.Status, len(end.Result), end.Error)
			}
			ctx := context.Background()
			msgs, err := n.bus.ReadDirect(ctx, bus.JournalFilter(end.ID))
			for _, m := range msgs {
				if len(m.Data) > journal.DefaultLargeValue {
					t.Fatalf("the journal holds %s of %d bytes, not a reference", m.Subject, len(m.Data))
				}
			}
			if err != nil || len(msgs) == 0 {
				t.Fatal(err)
			}
			rec, err := n.Record(ctx, end.ID)
			if err != nil || !bytes.Equal(rec.Result, end.Result) {
				t.Fatalf("the runs index's record: %v, %d bytes", err, len(rec.Result))
			}
			if list, err := n.List(ctx, api.ListFilter{Limit: 1}); err != nil || len(list) != 1 || !list[0].ResultLeftOut || list[0].Result != nil {
				t.Fatalf("a listing holds a large result: %v %+v", err, list)
			}
			d, err := n.Get(ctx, end.ID)
			if err != nil || len(d.Steps) != 2 || len(d.Steps[0].Value) != 1<<20+2 || !strings.Contains(string(d.Steps[1].Args), "iiii") {
				t.Fatalf("steps: %v %d", err, len(d.Steps))
			}
			exp, err := n.Export(ctx, end.ID)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := json.Marshal(exp)
			if bytes.Contains(data, []byte(`"$value"`)) || len(data) < 3<<20 {
				t.Fatalf("the export is not self-contained: %d bytes", len(data))
			}
			before := execs.Load()
			rep, err := replay.Replay(ctx, exp, replay.Options{Registry: testRegistry(&execs)})
			if err != nil || !rep.Matches || execs.Load() != before {
				t.Fatalf("replay: %v %+v, %d calls", err, rep, execs.Load()-before)
			}
			if _, err := n.Pin(ctx, end.ID); err != nil {
				t.Fatal(err)
			}
			pinned, err := n.bus.GetPinned(ctx, end.ID)
			if err != nil || bytes.Contains(pinned, []byte(`"$value"`)) || len(pinned) < 3<<20 {
				t.Fatalf("the pinned copy is not self-contained: %v, %d bytes", err, len(pinned))
			}
		})
	}
}

// BenchmarkLargeValue measures a run of one step that returns a fresh value
// of 1 MiB or 16 MiB (a string, unique per run, so that no value is stored
// only once), co-located and dispatched, under each sync policy, and beside
// it, on the same node in the same run, its floor: storing a value of that
// size once in the values object store (x-floor: the run's time over it).
// The step's value is journaled by reference, so the run writes the value
// once and reads it back once when dispatched.
func BenchmarkLargeValue(b *testing.B) {
	reg := builtins.NewRegistry()
	reg.MustRegister(&builtins.Step{
		Name: "bench.large",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var n int
			err := starlark.UnpackArgs(b.Name(), args, kwargs, "n", &n)
			return n, err
		},
		Exec: func(_ context.Context, _ builtins.Env, args json.RawMessage) (any, error) {
			var n int
			json.Unmarshal(args, &n)
			id := ulid.Make().String()
			return id + strings.Repeat("x", n-len(id)), nil
		},
	})
	src := testScript("def main(input):\n    return len(bench.large(input))\n")
	for _, policy := range syncPolicies {
		for _, size := range []int{1 << 20, 16 << 20} {
			for _, dispatch := range []bool{false, true} {
				name := fmt.Sprintf("%s/%dMiB/%s", map[bool]string{true: "always", false: "interval"}[policy.Always], size>>20,
					map[bool]string{false: "colocated", true: "dispatched"}[dispatch])
				b.Run(name, func(b *testing.B) {
					n := newTestNode(b, Options{Registry: reg, AlwaysDispatch: dispatch, Sync: policy})
					ctx := context.Background()
					b.SetBytes(int64(size))
					b.ResetTimer()
					for range b.N {
						r, err := n.Start(ctx, api.StartRequest{Script: src, Input: json.RawMessage(strconv.Itoa(size))})
						if err != nil {
							b.Fatal(err)
						}
						if end, err := n.Wait(ctx, r.ID); err != nil || string(end.Result) != strconv.Itoa(size) {
							b.Fatalf("run: %v %+v", err, end)
						}
					}
					b.StopTimer()
					perRun := b.Elapsed() / time.Duration(b.N)
					var floor time.Duration
					for i := range 3 {
						data := []byte(fmt.Sprintf("%q", fmt.Sprint(i, ulid.Make())+strings.Repeat("x", size)))
						t0 := time.Now()
						if _, err := n.journal.PutValue(ctx, data); err != nil {
							b.Fatal(err)
						}
						if d := time.Since(t0); i == 0 || d < floor {
							floor = d
						}
					}
					b.ReportMetric(float64(floor.Microseconds())/1e3, "floor-put-ms")
					b.ReportMetric(float64(perRun)/float64(floor), "x-floor")
				})
			}
		}
	}
}
