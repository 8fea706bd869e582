package time

import (
	"fmt"
	stdtime "time"

	"github.com/droverhq/drover/starlark/builtins"
	libtime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// helpers are the inline time.* builtins. They are those of
// go.starlark.net/lib/time (whose now is replaced by the journaled time.now
// step), written again here because lib/time names its errors after the bare
// function ("parse_time: ...") and keyword parameters in quotes: these parse
// their arguments under the qualified name with builtins.UnpackArgs. The
// positional-only ones keep starlark.UnpackPositionalArgs, whose messages name
// the parameter by position ("for parameter 1") in either case.
var helpers = map[string]func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error){
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
	_, err := stdtime.LoadLocation(name)
	return starlark.Bool(err == nil), nil
}

// parseTime implements time.parse_time(x, format=RFC 3339, location="UTC").
func parseTime(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	x, format, location := "", stdtime.RFC3339, "UTC"
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "x", &x, "format?", &format, "location?", &location); err != nil {
		return nil, err
	}
	var (
		t   stdtime.Time
		err error
	)
	if location == "UTC" {
		t, err = stdtime.Parse(format, x)
	} else {
		var loc *stdtime.Location
		if loc, err = stdtime.LoadLocation(location); err == nil {
			t, err = stdtime.ParseInLocation(format, x, loc)
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
	return libtime.Time(stdtime.Unix(sec, nsec).UTC()), nil
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
	loc, err := stdtime.LoadLocation(location)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return libtime.Time(stdtime.Date(year, stdtime.Month(month), day, hour, min, sec, nsec, loc)), nil
}
