// Package metrics implements the inline metrics module, with which a script
// reports numbers of its own to the node's metrics (DogStatsD, Prometheus):
//
//	metrics.count(name, value=1, tags={}) -> None
//	metrics.gauge(name, value, tags={}) -> None
//	metrics.histogram(name, value, tags={}) -> None
//
// count adds value (a whole number, not negative) to a counter, gauge sets
// a gauge to value, histogram observes value; for example
//
//	metrics.count("orders.charged", tags={"plan": plan})
//	metrics.histogram("charge.amount", amount, tags={"currency": "eur"})
//
// A name is 1 to MaxNameLen lower-case letters, digits, _ and ., starting
// with a letter; the node reports it as script.<name> (DogStatsD) and
// drover_script_<name> (Prometheus), with the node and the script as tags.
// A value is a finite int or float. Tags are a dict of at most MaxTags
// names (lower-case letters, digits and _, starting with a letter, at most
// MaxTagNameLen bytes; not node or script, which the node sets) to
// strings, ints or bools (sent as "3", "true"; at most MaxTagValueLen
// bytes). Keep tag values few: a customer or run id makes a series per
// value.
//
// The builtins run in the script's thread and are not steps: nothing is
// journaled, nothing is placed. They hand the metric to the thread's
// runtime when it is a Recorder, and do nothing otherwise.
//
// # Not replayed
//
// Metrics describe the live system: what this node did, now. A replay
// re-executes a script against its journal with no outside effect, and
// that includes metrics: `ctl replay` of last week's run must not bump
// today's counters, and a run adopted after its node was lost, which
// re-executes the prefix its journal answers before it goes on live, must
// not count that prefix twice. So the engine's runtime records a metric
// only while the run executes live; a replay's runtime is no Recorder, and
// a test runtime need not be one.
//
// Its init registers the builtins into builtins.Default; Register adds them
// to another registry.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
)

// Recorder takes a script's metrics: the engine's runtime for a live run.
// A replay's runtime is not one: metrics are not replayed.
//
// kind is "count", "gauge" or "histogram"; name, value and tags are
// checked as the package says (tags is nil when the call had none, and is
// the Recorder's to keep).
type Recorder interface {
	RecordMetric(thread *starlark.Thread, kind, name string, value float64, tags map[string]string)
}

// Limits of metrics' arguments.
const (
	MaxNameLen     = 200 // longest metric name, in bytes
	MaxTags        = 10  // most tags on one call
	MaxTagNameLen  = 64  // longest tag name, in bytes
	MaxTagValueLen = 200 // longest tag value, in bytes
)

// The kinds a Recorder gets.
const (
	KindCount     = "count"
	KindGauge     = "gauge"
	KindHistogram = "histogram"
)

func init() { Register(builtins.Default) }

// Register adds metrics.count, metrics.gauge and metrics.histogram to r.
// Like Registry.MustRegisterInline it panics if one of the names is taken.
func Register(r *builtins.Registry) {
	for _, kind := range []string{KindCount, KindGauge, KindHistogram} {
		name := "metrics." + kind
		r.MustRegisterInline(name, starlark.NewBuiltin(name, record(kind)))
	}
}

// record returns the implementation of metrics.<kind>.
func record(kind string) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var (
			name  string
			value starlark.Value
			tags  *starlark.Dict
		)
		valueParam := "value"
		if kind == KindCount {
			valueParam = "value?" // 1
		}
		if err := builtins.UnpackArgs(b.Name(), args, kwargs, "name", &name, valueParam, &value, "tags??", &tags); err != nil {
			return nil, err
		}
		if err := checkName(name); err != nil {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "name", Err: err}
		}
		v, err := number(kind, value)
		if err != nil {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "value", Err: err}
		}
		t, err := tagsOf(tags)
		if err != nil {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "tags", Err: err}
		}
		rt, err := builtins.RuntimeOf(thread)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		if rec, ok := rt.(Recorder); ok {
			rec.RecordMetric(thread, kind, name, v, t)
		}
		return starlark.None, nil
	}
}

// checkName checks a metric name: [a-z][a-z0-9_.]*, at most MaxNameLen bytes.
func checkName(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("the name is %d bytes long, over the limit of %d", len(name), MaxNameLen)
	}
	ok := name != "" && 'a' <= name[0] && name[0] <= 'z'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("%q is not a metric name; use lower-case letters, digits, _ and ., starting with a letter (e.g. \"orders.charged\")", name)
	}
	return nil
}

// number returns the float value of an int or float argument, checked for
// kind: finite, and for a count whole and not negative. A count's absent
// value is 1.
func number(kind string, value starlark.Value) (float64, error) {
	var f float64
	switch v := value.(type) {
	case nil:
		return 1, nil // count's default
	case starlark.Int:
		f = float64(v.Float())
		if math.IsInf(f, 0) {
			return 0, errors.New("the int is too large to be a metric value")
		}
	case starlark.Float:
		f = float64(v)
	default:
		return 0, fmt.Errorf("got %s, want int or float", value.Type())
	}
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, fmt.Errorf("%s is not a finite number", value)
	case kind == KindCount && f < 0:
		return 0, fmt.Errorf("%s is negative; a count only goes up (use metrics.gauge for a level)", value)
	case kind == KindCount && f != math.Trunc(f):
		return 0, fmt.Errorf("%s is not a whole number; a count adds whole units (use metrics.histogram for a measure)", value)
	}
	return f, nil
}

// tagsOf checks a tags dict and returns it as strings, or nil when it is
// absent or empty.
func tagsOf(d *starlark.Dict) (map[string]string, error) {
	if d == nil || d.Len() == 0 {
		return nil, nil
	}
	if d.Len() > MaxTags {
		return nil, fmt.Errorf("%d tags, over the limit of %d", d.Len(), MaxTags)
	}
	out := make(map[string]string, d.Len())
	for _, kv := range d.Items() {
		k, ok := kv[0].(starlark.String)
		if !ok {
			return nil, fmt.Errorf("got a key of type %s, want string", kv[0].Type())
		}
		name := string(k)
		if err := checkTagName(name); err != nil {
			return nil, err
		}
		var s string
		switch v := kv[1].(type) {
		case starlark.String:
			s = string(v)
		case starlark.Int:
			s = v.String()
		case starlark.Bool:
			s = strconv.FormatBool(bool(v))
		default:
			return nil, fmt.Errorf("for tag %s: got %s, want string, int or bool", name, v.Type())
		}
		if len(s) > MaxTagValueLen {
			return nil, fmt.Errorf("for tag %s: the value is %d bytes long, over the limit of %d", name, len(s), MaxTagValueLen)
		}
		out[name] = s
	}
	return out, nil
}

// checkTagName checks a tag name: [a-z][a-z0-9_]*, at most MaxTagNameLen
// bytes, not node or script.
func checkTagName(name string) error {
	if name == "node" || name == "script" {
		return fmt.Errorf("tag %s is set by the node; choose another name", name)
	}
	if len(name) > MaxTagNameLen {
		return fmt.Errorf("tag name %s is %d bytes long, over the limit of %d", name, len(name), MaxTagNameLen)
	}
	ok := name != "" && 'a' <= name[0] && name[0] <= 'z'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_'
	}
	if !ok {
		return fmt.Errorf("%q is not a tag name; use lower-case letters, digits and _, starting with a letter", name)
	}
	return nil
}
