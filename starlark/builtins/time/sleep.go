package time

import (
	"context"
	"encoding/json"
	"fmt"
	stdtime "time"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
)

// SleepGrace is added to a sleep's duration to form its deadline, so that the
// engine's timeout for the step never cuts the sleep short.
const SleepGrace = 10 * stdtime.Second

func sleepArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	var d builtins.Duration
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "duration", &d); err != nil {
		return nil, err
	}
	return map[string]any{"duration": d.String()}, nil
}

func sleepDuration(raw json.RawMessage) (stdtime.Duration, error) {
	var a struct {
		Duration string `json:"duration"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return 0, err
	}
	d, err := stdtime.ParseDuration(a.Duration)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative duration %s", a.Duration)
	}
	return d, err
}

func sleepDeadline(raw json.RawMessage) stdtime.Duration {
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
	t := stdtime.NewTimer(d)
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
