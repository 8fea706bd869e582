package builtins

import (
	"fmt"
	"time"

	libtime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// Duration is a non-negative length of time that a script passes to a builtin,
// written as a string such as "250ms", "2s", "10m" or "1h30m" (the syntax of
// time.ParseDuration). A time.duration value (e.g. time.second * 5) is also
// accepted. Use it as an argument of UnpackArgs:
//
//	timeout := builtins.Duration(30 * time.Second)
//	err := builtins.UnpackArgs(b.Name(), args, kwargs, "timeout?", &timeout)
//
// which reports `http.get: for parameter timeout: "2x" is not a duration (want
// e.g. "250ms", "2s", "10m")`.
type Duration time.Duration

var _ starlark.Unpacker = (*Duration)(nil)

// Unpack implements starlark.Unpacker.
func (d *Duration) Unpack(v starlark.Value) error {
	var parsed time.Duration
	switch x := v.(type) {
	case starlark.String:
		p, err := time.ParseDuration(string(x))
		if err != nil {
			return fmt.Errorf(`%s is not a duration (want e.g. "250ms", "2s", "10m")`, x.String())
		}
		parsed = p
	case libtime.Duration:
		parsed = time.Duration(x)
	default:
		return fmt.Errorf("got %s, want string", v.Type())
	}
	if parsed < 0 {
		return fmt.Errorf(`%s is negative (want a duration ≥ 0, e.g. "2s")`, v.String())
	}
	*d = Duration(parsed)
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String returns the canonical form of d ("1h30m0s"), which time.ParseDuration
// reads back; steps journal durations in this form.
func (d Duration) String() string { return time.Duration(d).String() }
