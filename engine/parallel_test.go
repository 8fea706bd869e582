package engine

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
)

// parallelRegistry adds test.jitter(x): returns x after a random delay of up to
// 2ms, recording the peak number of concurrent executions.
func parallelRegistry(execs, running, peak *atomic.Int64) *builtins.Registry {
	reg := testRegistry(execs)
	reg.MustRegister(&builtins.Step{Name: "test.jitter",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var x starlark.Value
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "x", &x); err != nil {
				return nil, err
			}
			return builtins.ToJSON(x)
		},
		Exec: func(_ context.Context, _ builtins.Env, args json.RawMessage) (any, error) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) // the randomised delay under test
			running.Add(-1)
			return args, nil
		}})
	return reg
}

const parallelScript = `
def branch(i):
    a = test.jitter(i)
    b = test.jitter(i * 10)
    if i == 5:
        fail("branch five broke")
    if i == 7:
        fail("branch seven broke")
    return [a, b]

def main(input):
    ok = parallel([lambda i=i: branch(i) for i in range(1, 5)], max = 2)
    test.echo("between")
    bad = parallel([lambda i=i: branch(i) for i in range(1, 9)])
    return ok
`

// TestParallelDeterministic runs the same script many times with random delays
// in every step: step ids, results and errors must not change.
func TestParallelDeterministic(t *testing.T) {
	var execs, running, peak atomic.Int64
	n := newTestNode(t, Options{Registry: parallelRegistry(&execs, &running, &peak)})
	var wantIDs []string
	var wantErr string
	for round := 0; round < 15; round++ {
		end := runScript(t, n, parallelScript, "")
		if end.Status != api.StatusFailed {
			t.Fatalf("status %s", end.Status)
		}
		d, err := n.Get(context.Background(), end.ID)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range d.Steps {
			ids = append(ids, s.ID+"="+string(s.Value))
		}
		if round == 0 {
			wantIDs, wantErr = ids, end.Error.Message
			for _, w := range []string{"parallel: branch 5 of 8 (steps 3.5.*) failed at t.star:6:13: fail: branch five broke", "branches [7] also failed"} {
				if !strings.Contains(wantErr, w) {
					t.Fatalf("error %q lacks %q", wantErr, w)
				}
			}
			if !strings.Contains(strings.Join(ids, " "), "1.1.1=1 1.1.2=10") || !contains(ids, "2=\"between\"") || !contains(ids, "3.8.2=80") {
				t.Fatalf("unexpected step ids: %v", ids)
			}
			continue
		}
		if strings.Join(ids, " ") != strings.Join(wantIDs, " ") {
			t.Fatalf("round %d step ids/values differ:\n%v\n%v", round, ids, wantIDs)
		}
		if end.Error.Message != wantErr {
			t.Fatalf("round %d error differs:\n%s\n%s", round, end.Error.Message, wantErr)
		}
	}
	if peak.Load() > 8 {
		t.Fatalf("peak concurrency %d", peak.Load())
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestParallelMaxAndErrors(t *testing.T) {
	var execs, running, peak atomic.Int64
	n := newTestNode(t, Options{Registry: parallelRegistry(&execs, &running, &peak)})
	end := runScript(t, n, "def main(input):\n    return parallel([lambda i=i: test.jitter(i) for i in range(12)], max = 2)\n", "")
	if end.Status != api.StatusCompleted || string(end.Result) != "[0,1,2,3,4,5,6,7,8,9,10,11]" {
		t.Fatalf("%s %s %+v", end.Status, end.Result, end.Error)
	}
	if peak.Load() > 2 {
		t.Fatalf("max = 2 but %d branches ran at once", peak.Load())
	}
	for _, tt := range []struct{ name, src, want string }{
		{"shared state", "def main(input):\n    seen = []\n    parallel([lambda: seen.append(test.echo(1))])\n",
			"cannot append to frozen list (values shared with parallel branches are frozen: return results from the branch instead of mutating shared state)"},
		{"not a function", "def main(input):\n    parallel([1])\n", "parallel: fns[0] is a int, want a function"},
		{"step failure cause", "def main(input):\n    parallel([lambda: test.echo(1), lambda: test.down()])\n", "branch 2 of 2 (steps 1.2.*) failed at t.star:2:54: test.down (step 1.2.1) failed after 2 attempts"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			end := runScript(t, n, tt.src, "")
			if end.Status != api.StatusFailed || !strings.Contains(end.Error.Message, tt.want) {
				t.Fatalf("%s: %+v\nwant %q", end.Status, end.Error, tt.want)
			}
		})
	}
}
