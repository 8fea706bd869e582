package time_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	stdtime "time"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/time"
	"go.starlark.net/starlark"
)

func TestTimeNow(t *testing.T) {
	rt := builtinstest.NewRuntime()
	before := stdtime.Now().UnixNano()
	globals, err := rt.Run(builtinstest.NewRegistry(time.Register), `t = time.now()
got = (type(t), t.unix_nano, (t + time.second - t) == time.parse_duration("1s"), str(t).endswith(" UTC"))`, nil)
	after := stdtime.Now().UnixNano()
	if err != nil {
		t.Fatal(err)
	}
	calls := rt.Calls()
	if len(calls) != 1 || calls[0].Name != "time.now" || !calls[0].Local || calls[0].Args != "null" {
		t.Fatalf("calls = %+v, want one Local time.now with null args", calls)
	}
	var res struct {
		UnixNano int64 `json:"unix_nano"`
	}
	if err := json.Unmarshal([]byte(calls[0].Result), &res); err != nil || res.UnixNano < before || res.UnixNano > after {
		t.Fatalf("journaled %s, want unix_nano in [%d, %d]", calls[0].Result, before, after)
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
		{"parse_duration", `time.parse_duration("1m30s").seconds`, `90.0`},
		{"constants", `str(2 * time.hour + 3 * time.minute)`, `"2h3m0s"`},
		{"from_timestamp is UTC", `str(time.from_timestamp(0))`, `"1970-01-01 00:00:00 +0000 UTC"`},
		{"parse_time", `time.parse_time("2024-05-01T10:00:00Z").unix`, `1714557600`},
		{"time", `time.time(year=2024, month=5, day=1).unix`, `1714521600`},
		{"is_valid_timezone", `time.is_valid_timezone("UTC")`, `True`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := builtinstest.NewRuntime()
			got, err := rt.Eval(builtinstest.NewRegistry(time.Register), tt.src, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if calls := rt.Calls(); len(calls) != 0 {
				t.Errorf("inline time.* ran steps: %+v", calls)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	rt := builtinstest.NewRuntime()
	r := builtinstest.NewRegistry(time.Register)
	if got, err := rt.Eval(r, `sleep("1ms")`, nil); err != nil || got != starlark.None {
		t.Fatalf("sleep returned %v, %v; want None", got, err)
	}
	calls := rt.Calls()
	if len(calls) != 1 || !calls[0].Local || calls[0].Args != `{"duration":"1ms"}` || calls[0].Result != "null" {
		t.Fatalf("calls = %+v, want one Local sleep with {\"duration\":\"1ms\"}", calls)
	}

	step, err := r.Lookup("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := step.Deadline(json.RawMessage(`{"duration":"1h0m0s"}`)), stdtime.Hour+time.SleepGrace; got != want {
		t.Errorf("Deadline = %s, want %s", got, want)
	}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), stdtime.Now().Add(-stdtime.Second))
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
			_, err := step.Exec(tt.ctx, builtinstest.NewEnv(), json.RawMessage(tt.args))
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

// TestBadArguments checks that every bad call fails the script, before any step
// runs, with a message that names the builtin and the argument.
func TestBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{"time.now args", `time.now(1)`, `time.now: got 1 arguments, want at most 0`},
		{"sleep missing", `sleep()`, `sleep: missing argument for duration`},
		{"sleep int", `sleep(5)`, `sleep: for parameter duration: got int, want string`},
		{"sleep bad", `sleep("soon")`, `sleep: for parameter duration: "soon" is not a duration (want e.g. "250ms", "2s", "10m")`},
		{"sleep negative", `sleep(duration="-5m")`, `sleep: for parameter duration: "-5m" is negative (want a duration ≥ 0, e.g. "2s")`},
		{"time.parse_duration bad", `time.parse_duration("bogus")`, `time.parse_duration: for parameter 1: time: invalid duration "bogus"`},
		{"time.from_timestamp type", `time.from_timestamp("x")`, `time.from_timestamp: for parameter 1: got string, want int`},
		{"time.parse_duration keyword", `time.parse_duration(d="1s")`, `time.parse_duration: unexpected keyword arguments`},
		{"time.parse_time format type", `time.parse_time("x", format=1)`, `time.parse_time: for parameter format: got int, want string`},
		{"time.parse_time unparsable", `time.parse_time("x")`, `time.parse_time: parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"`},
		{"time.time positional", `time.time(2024)`, `time.time: unexpected positional arguments`},
		{"time.time type", `time.time(month="May")`, `time.time: for parameter month: got string, want int`},
		{"time.time zone", `time.time(location="Nowhere/Special")`, `time.time: unknown time zone Nowhere/Special`},
	}
	r := builtinstest.NewRegistry(time.Register)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { builtinstest.CheckBadCall(t, r, tt.src, tt.wantErr) })
	}
}
