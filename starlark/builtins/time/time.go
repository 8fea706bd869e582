// Package time implements the time module of Script API v0 and sleep:
//
//	time.now() -> time.time             a step, local: journaled, so a replay sees the same time
//	sleep(duration) -> None             a step, local: a durable timer ("2s", "10m", "1h30m")
//	time.parse_duration(d) -> time.duration
//	time.parse_time(x, format="2006-01-02T15:04:05Z07:00", location="UTC") -> time.time
//	time.from_timestamp(sec, nsec=0) -> time.time (in UTC)
//	time.time(year=, month=, day=, hour=, minute=, second=, nanosecond=, location="UTC") -> time.time
//	time.is_valid_timezone(name) -> bool
//	time.nanosecond, time.microsecond, time.millisecond, time.second, time.minute, time.hour
//
// Values are those of go.starlark.net/lib/time. Local steps always execute on
// the node coordinating the run; the other members are inline builtins and
// constants, which run in the script's thread and are not journaled.
//
// The package is named after the script module; it imports the standard
// library's time as stdtime, and code that needs both does the same.
//
// Its init registers the builtins into builtins.Default; Register adds them to
// another registry.
package time

import (
	"context"
	"encoding/json"
	"fmt"
	stdtime "time"

	"github.com/droverhq/drover/starlark/builtins"
	libtime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// constants are the duration constants of lib/time, inline members of time.
var constants = []string{"nanosecond", "microsecond", "millisecond", "second", "minute", "hour"}

func init() { Register(builtins.Default) }

// Register adds time.now, sleep and the inline time.* members to r. Like
// Registry.MustRegister it panics if one of the names is taken.
func Register(r *builtins.Registry) {
	r.MustRegister(&builtins.Step{
		Name:  "time.now",
		Doc:   "the current time (journaled, so a replay sees the same time)",
		Local: true,
		Args:  builtins.NoArgs,
		Exec: func(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
			return map[string]any{"unix_nano": stdtime.Now().UnixNano()}, nil
		},
		Value: nowValue,
	})
	r.MustRegister(&builtins.Step{
		Name:     "sleep",
		Doc:      "wait for a duration such as \"2s\"",
		Local:    true,
		Args:     sleepArgs,
		Exec:     sleepExec,
		Value:    func(json.RawMessage) (starlark.Value, error) { return starlark.None, nil },
		Deadline: sleepDeadline,
		Timer:    sleepDuration,
	})
	for name, fn := range helpers {
		r.MustRegisterInline("time."+name, starlark.NewBuiltin("time."+name, fn))
	}
	for _, name := range constants {
		r.MustRegisterInline("time."+name, libtime.Module.Members[name])
	}
}

func nowValue(raw json.RawMessage) (starlark.Value, error) {
	var res struct {
		UnixNano *int64 `json:"unix_nano"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || res.UnixNano == nil {
		return nil, fmt.Errorf("time.now: bad journaled result %s", raw)
	}
	return libtime.Time(stdtime.Unix(0, *res.UnixNano).UTC()), nil
}
