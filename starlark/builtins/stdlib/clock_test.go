package stdlib

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
)

func TestTimeNow(t *testing.T) {
	rt := newFake(t)
	before := time.Now().UnixNano()
	globals, err := rt.run(t, `t = time.now()
got = (type(t), t.unix_nano, (t + time.second - t) == time.parse_duration("1s"), str(t).endswith(" UTC"))`, nil)
	after := time.Now().UnixNano()
	if err != nil {
		t.Fatal(err)
	}
	calls := rt.stepCalls()
	if len(calls) != 1 || calls[0].name != "time.now" || !calls[0].local || calls[0].args != "null" {
		t.Fatalf("calls = %+v, want one Local time.now with null args", calls)
	}
	var res struct {
		UnixNano int64 `json:"unix_nano"`
	}
	if err := json.Unmarshal([]byte(calls[0].result), &res); err != nil || res.UnixNano < before || res.UnixNano > after {
		t.Fatalf("journaled %s, want unix_nano in [%d, %d]", calls[0].result, before, after)
	}
	want := `("time.time", ` + strconv.FormatInt(res.UnixNano, 10) + `, True, True)`
	if got := globals["got"].String(); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestTimeInline(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"parse_duration", `got = time.parse_duration("1m30s").seconds`, `90.0`},
		{"constants", `got = str(2 * time.hour + 3 * time.minute)`, `"2h3m0s"`},
		{"from_timestamp is UTC", `got = str(time.from_timestamp(0))`, `"1970-01-01 00:00:00 +0000 UTC"`},
		{"parse_time", `got = time.parse_time("2024-05-01T10:00:00Z").unix`, `1714557600`},
		{"time", `got = time.time(year=2024, month=5, day=1).unix`, `1714521600`},
		{"is_valid_timezone", `got = time.is_valid_timezone("UTC")`, `True`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newFake(t)
			if got := rt.got(t, tt.src, nil); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if calls := rt.stepCalls(); len(calls) != 0 {
				t.Errorf("inline time.* ran steps: %+v", calls)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	rt := newFake(t)
	if got := rt.got(t, `got = sleep("1ms")`, nil); got != "None" {
		t.Fatalf("sleep returned %s, want None", got)
	}
	calls := rt.stepCalls()
	if len(calls) != 1 || !calls[0].local || calls[0].args != `{"duration":"1ms"}` || calls[0].result != "null" {
		t.Fatalf("calls = %+v, want one Local sleep with {\"duration\":\"1ms\"}", calls)
	}

	r := builtins.NewRegistry()
	Register(r)
	step, err := r.Lookup("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := step.Deadline(json.RawMessage(`{"duration":"1h0m0s"}`)), time.Hour+SleepGrace; got != want {
		t.Errorf("Deadline = %s, want %s", got, want)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	tests := []struct {
		name    string
		ctx     context.Context
		args    string
		wantErr error
	}{
		{"cancelled", cancelled, `{"duration":"1h0m0s"}`, &builtins.StepError{Code: builtins.CodeCancelled}},
		{"deadline", expired, `{"duration":"1h0m0s"}`, &builtins.StepError{Code: builtins.CodeTimeout}},
		{"bad args", context.Background(), `{"duration":"x"}`, &builtins.StepError{Code: builtins.CodeBadArgs}},
		{"zero", cancelled, `{"duration":"0s"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := step.Exec(tt.ctx, newFakeEnv(), json.RawMessage(tt.args))
			if tt.wantErr == nil {
				// A zero sleep may still see the cancelled context first; both are fine.
				if err != nil && !errors.Is(err, &builtins.StepError{Code: builtins.CodeCancelled}) {
					t.Fatalf("Exec: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Exec error = %v, want code %s", err, tt.wantErr.(*builtins.StepError).Code)
			}
		})
	}
}
