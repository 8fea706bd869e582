package stdlib

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
	libtime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// SleepGrace is added to a sleep's duration to form its deadline, so that the
// engine's timeout for the step never cuts the sleep short.
const SleepGrace = 10 * time.Second

// timeConstants are the duration constants of lib/time, also inline.
var timeConstants = []string{"nanosecond", "microsecond", "millisecond", "second", "minute", "hour"}

func registerClock(r *builtins.Registry) {
	r.MustRegister(&builtins.Step{
		Name:  "time.now",
		Doc:   "the current time (journaled, so a replay sees the same time)",
		Local: true,
		Args:  builtins.NoArgs,
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
	for name, fn := range timeHelpers {
		r.MustRegisterInline("time."+name, starlark.NewBuiltin("time."+name, fn))
	}
	for _, name := range timeConstants {
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
	return libtime.Time(time.Unix(0, *res.UnixNano).UTC()), nil
}

func sleepArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	var d builtins.Duration
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "duration", &d); err != nil {
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

// timeHelpers are the inline time.* builtins. They are those of
// go.starlark.net/lib/time (whose now is replaced by the journaled time.now
// step), written again here because lib/time names its errors after the bare
// function ("parse_time: ...") and keyword parameters in quotes: these parse
// their arguments under the qualified name with builtins.UnpackArgs. The
// positional-only ones keep starlark.UnpackPositionalArgs, whose messages name
// the parameter by position ("for parameter 1") in either case.
var timeHelpers = map[string]func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error){
	"from_timestamp":    fromTimestamp,
	"is_valid_timezone": isValidTimezone,
	"parse_duration":    parseDuration,
	"parse_time":        parseTime,
	"time":              newTime,
}

// parseDuration implements time.parse_duration(d).
func parseDuration(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var d libtime.Duration
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &d); err != nil {
		return nil, err
	}
	return d, nil
}

// isValidTimezone implements time.is_valid_timezone(name).
func isValidTimezone(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &name); err != nil {
		return nil, err
	}
	_, err := time.LoadLocation(name)
	return starlark.Bool(err == nil), nil
}

// parseTime implements time.parse_time(x, format=RFC 3339, location="UTC").
func parseTime(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	x, format, location := "", time.RFC3339, "UTC"
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "x", &x, "format?", &format, "location?", &location); err != nil {
		return nil, err
	}
	var (
		t   time.Time
		err error
	)
	if location == "UTC" {
		t, err = time.Parse(format, x)
	} else {
		var loc *time.Location
		if loc, err = time.LoadLocation(location); err == nil {
			t, err = time.ParseInLocation(format, x, loc)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return libtime.Time(t), nil
}

// fromTimestamp implements time.from_timestamp(sec, nsec=0); the time is in
// UTC, not in the node's zone.
func fromTimestamp(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var sec, nsec int64
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &sec, &nsec); err != nil {
		return nil, err
	}
	return libtime.Time(time.Unix(sec, nsec).UTC()), nil
}

// newTime implements time.time(year=, month=, day=, hour=, minute=, second=,
// nanosecond=, location="UTC"), keyword arguments only.
func newTime(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		year, month, day, hour, min, sec, nsec int
		location                               string
	)
	if err := builtins.UnpackArgs(b.Name(), args, kwargs,
		"year?", &year, "month?", &month, "day?", &day,
		"hour?", &hour, "minute?", &min, "second?", &sec, "nanosecond?", &nsec,
		"location?", &location,
	); err != nil {
		return nil, err
	}
	if len(args) > 0 {
		return nil, fmt.Errorf("%s: unexpected positional arguments", b.Name())
	}
	loc, err := time.LoadLocation(location)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return libtime.Time(time.Date(year, time.Month(month), day, hour, min, sec, nsec, loc)), nil
}
