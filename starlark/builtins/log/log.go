// Package log implements the inline log module of Script API v0:
//
//	log.debug(msg, **fields) -> None
//	log.info(msg, **fields) -> None
//	log.warn(msg, **fields) -> None
//	log.error(msg, **fields) -> None
//
// A call writes one line, with the fields as JSON, through the logger of the
// run (builtins.Runtime.Logger), which carries the run's own fields. The
// builtins run in the script's thread and are not journaled.
//
// The package is named after the script module; it does not use the standard
// library's log.
//
// Its init registers the builtins into builtins.Default; Register adds them to
// another registry.
package log

import (
	"fmt"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/rs/zerolog"
	"go.starlark.net/starlark"
)

// levels maps the log.* builtins to zerolog levels.
var levels = []struct {
	name  string
	level zerolog.Level
}{
	{"debug", zerolog.DebugLevel},
	{"info", zerolog.InfoLevel},
	{"warn", zerolog.WarnLevel},
	{"error", zerolog.ErrorLevel},
}

func init() { Register(builtins.Default) }

// Register adds log.debug, log.info, log.warn and log.error to r. Like
// Registry.MustRegisterInline it panics if one of the names is taken.
func Register(r *builtins.Registry) {
	for _, l := range levels {
		name := "log." + l.name
		r.MustRegisterInline(name, starlark.NewBuiltin(name, logAt(l.level)))
	}
}

// logAt returns the implementation of log.<level>(msg, **fields). Fields
// are checked the same way whatever the level, so that a script does not fail
// only when debug logging is switched on.
func logAt(level zerolog.Level) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var msg string
		if err := builtins.UnpackArgs(b.Name(), args, nil, "msg", &msg); err != nil {
			return nil, err
		}
		type field struct {
			name string
			raw  []byte
		}
		fields := make([]field, 0, len(kwargs))
		for _, kv := range kwargs {
			name := string(kv[0].(starlark.String))
			switch name {
			case zerolog.LevelFieldName, zerolog.MessageFieldName, zerolog.TimestampFieldName:
				return nil, fmt.Errorf("%s: field %s is reserved for the log line itself; choose another name", b.Name(), name)
			}
			v, err := builtins.ToJSON(kv[1])
			if err != nil {
				return nil, fmt.Errorf("%s: for field %s: %w", b.Name(), name, err)
			}
			raw, err := builtins.Canonical(v)
			if err != nil {
				return nil, fmt.Errorf("%s: for field %s: %w", b.Name(), name, err)
			}
			fields = append(fields, field{name, raw})
		}
		rt, err := builtins.RuntimeOf(thread)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		logger := rt.Logger(thread)
		if logger == nil {
			return starlark.None, nil
		}
		ev := logger.WithLevel(level)
		for _, f := range fields {
			ev = ev.RawJSON(f.name, f.raw)
		}
		ev.Msg(msg)
		return starlark.None, nil
	}
}
