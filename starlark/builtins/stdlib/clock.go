package stdlib

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
	libtime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// SleepGrace is added to a sleep's duration to form its deadline, so that the
// engine's timeout for the step never cuts the sleep short.
const SleepGrace = 10 * time.Second

// timeInline lists the members of go.starlark.net/lib/time that scripts get as
// inline builtins. Its now is replaced by the time.now step, which is journaled.
var timeInline = []string{"from_timestamp", "is_valid_timezone", "parse_duration", "parse_time", "time"}

// timeConstants are the duration constants of lib/time, also inline.
var timeConstants = []string{"nanosecond", "microsecond", "millisecond", "second", "minute", "hour"}

func registerClock(r *builtins.Registry) {
	r.MustRegister(&builtins.Step{
		Name:  "time.now",
		Doc:   "the current time (journaled, so a replay sees the same time)",
		Local: true,
		Args:  noArgs,
		Exec: func(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
			return map[string]any{"unix_nano": time.Now().UnixNano()}, nil
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
	for _, name := range timeInline {
		r.MustRegisterInline("time."+name, qualify("time", name, libtime.Module.Members[name]))
	}
	for _, name := range timeConstants {
		r.MustRegisterInline("time."+name, libtime.Module.Members[name])
	}
}

// noArgs is the Args of a step that takes no arguments; it journals null.
func noArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	return nil, unpackArgs(b.Name(), args, kwargs)
}

func nowValue(raw json.RawMessage) (starlark.Value, error) {
	var res struct {
		UnixNano *int64 `json:"unix_nano"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || res.UnixNano == nil {
		return nil, fmt.Errorf("time.now: bad journaled result %s", raw)
	}
	return libtime.Time(time.Unix(0, *res.UnixNano).UTC()), nil
}

func sleepArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	var d builtins.Duration
	if err := unpackArgs(b.Name(), args, kwargs, "duration", &d); err != nil {
		return nil, err
	}
	return map[string]any{"duration": d.String()}, nil
}

func sleepDuration(raw json.RawMessage) (time.Duration, error) {
	var a struct {
		Duration string `json:"duration"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(a.Duration)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative duration %s", a.Duration)
	}
	return d, err
}

func sleepDeadline(raw json.RawMessage) time.Duration {
	d, err := sleepDuration(raw)
	if err != nil {
		return 0
	}
	return d + SleepGrace
}

func sleepExec(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
	d, err := sleepDuration(raw)
	if err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "sleep: bad arguments: %v", err)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			return nil, builtins.Errorf(builtins.CodeTimeout, "sleep %s: the step's deadline passed first", d)
		}
		return nil, builtins.Errorf(builtins.CodeCancelled, "sleep %s: cancelled", d)
	}
}

// qualify returns a builtin that calls fn (a lib/time builtin named name) under
// the qualified name module.name, so its errors name what the script wrote.
// Times it returns are converted to UTC: a script must not see the node's zone.
func qualify(module, name string, fn starlark.Value) *starlark.Builtin {
	inner := fn.(*starlark.Builtin)
	full := module + "." + name
	return starlark.NewBuiltin(full, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		v, err := inner.CallInternal(thread, args, kwargs)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), name+": ")
			msg = quotedParam.ReplaceAllString(msg, "for parameter $1: ")
			return nil, fmt.Errorf("%s: %s", full, msg)
		}
		if t, ok := v.(libtime.Time); ok && name == "from_timestamp" {
			v = libtime.Time(time.Time(t).UTC())
		}
		return v, nil
	})
}
