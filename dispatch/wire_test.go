package dispatch

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/starlark/builtins"
)

func TestWireRoundTrip(t *testing.T) {
	envs := []Envelope{
		{Run: "01JCZ0Q8Y5T3J4B2N6X7W9V0RA", Step: "1.2", Attempt: 3, Builtin: "http.get", Args: json.RawMessage(`{"url":"http://x"}`),
			ArgsRef: "sha256-ab", Deadline: time.Unix(0, 1_700_000_000_123_456_789).UTC(), Key: "01JCZ0Q8Y5T3J4B2N6X7W9V0RA/1.2",
			Demand: []meter.Demand{{Resource: "github_api", Amount: 1}, {Resource: "db", Amount: 0.25}}},
		{Run: "r", Step: "1", Attempt: 1, Builtin: "b"}, // zero deadline, no arguments, no demand
	}
	trace := propagation.MapCarrier{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "a=b"}
	for _, env := range envs {
		got, gotTrace, err := decodeRequest(encodeRequest(env, trace))
		if err != nil || !reflect.DeepEqual(got, env) || !reflect.DeepEqual(gotTrace, trace) {
			t.Errorf("request: %+v %v, %v; want %+v %v", got, gotTrace, err, env, trace)
		}
	}
	results := []api.ResultEntry{
		{Step: "1.2", Value: json.RawMessage(`[1,"a"]`), Node: "n2", Attempts: 2, Start: time.Unix(0, 1_700_000_000_000_000_001).UTC(), Duration: 1500 * time.Microsecond, SpanID: "0123456789abcdef"},
		{Step: "3", Error: &builtins.StepError{Code: builtins.CodeTimeout, Message: "http.get: no answer within 30s", Retryable: true}, Node: "n1", Attempts: 5},
		{Step: "4", Error: &builtins.StepError{Code: "http", Message: "404"}},
	}
	for i, res := range results {
		ref := []string{"", "sha256-cd", ""}[i]
		got, gotRef, err := decodeAnswer(encodeAnswer(res, ref))
		if err != nil || !reflect.DeepEqual(got, res) || gotRef != ref {
			t.Errorf("answer: %+v %q, %v; want %+v %q", got, gotRef, err, res, ref)
		}
	}
}

// TestWireRejectsMalformed: every truncation, trailing bytes and another
// version are errors, never a panic or a partial value.
func TestWireRejectsMalformed(t *testing.T) {
	req := encodeRequest(Envelope{Run: "r", Step: "1", Builtin: "b", Args: json.RawMessage(`1`), Deadline: time.Now(), Demand: []meter.Demand{{Resource: "x", Amount: 1}}}, propagation.MapCarrier{"traceparent": "t"})
	res := encodeAnswer(api.ResultEntry{Step: "1", Value: json.RawMessage(`1`), Error: &builtins.StepError{Code: "c", Message: "m"}, Node: "n", Start: time.Now()}, "ref")
	for i := range len(req) {
		if _, _, err := decodeRequest(req[:i]); err == nil {
			t.Errorf("request cut at %d of %d decoded", i, len(req))
		}
	}
	for i := range len(res) {
		if _, _, err := decodeAnswer(res[:i]); err == nil {
			t.Errorf("answer cut at %d of %d decoded", i, len(res))
		}
	}
	if _, _, err := decodeRequest(append(req, 0)); err == nil {
		t.Error("request with a trailing byte decoded")
	}
	other := append([]byte{wireVersion + 1}, req[1:]...)
	if _, _, err := decodeRequest(other); err == nil || !strings.Contains(err.Error(), "unknown version") {
		t.Errorf("another version: %v", err)
	}
	if _, _, err := decodeRequest([]byte(`{"run":"r"}`)); err == nil {
		t.Error("JSON decoded as the wire form")
	}
	for _, env := range []Envelope{
		{Step: "1", Attempt: 1, Builtin: "b"},
		{Run: "r", Step: "1", Attempt: 0, Builtin: "b"},
		{Run: "r", Step: "1", Attempt: 1, Builtin: "b", Demand: []meter.Demand{{Resource: "db", Amount: math.NaN()}}},
		{Run: "r", Step: "1", Attempt: 1, Builtin: "b", Demand: []meter.Demand{{Resource: "db", Amount: -1}}},
	} {
		if _, _, err := decodeRequest(encodeRequest(env, nil)); err == nil {
			t.Errorf("%+v decoded", env)
		}
	}
}

// TestWireCoversEveryField fails when Envelope or api.ResultEntry gains a
// field: add it to wire.go, or a direct step would lose it on the way.
func TestWireCoversEveryField(t *testing.T) {
	for _, c := range []struct {
		v      any
		fields int
	}{{Envelope{}, 9}, {api.ResultEntry{}, 9}, {builtins.StepError{}, 3}, {meter.Demand{}, 2}} {
		if n := reflect.TypeOf(c.v).NumField(); n != c.fields {
			t.Errorf("%T has %d fields, the wire form knows %d: encode the new ones in wire.go (api.ResultEntry.Call is the coordinator's and is not sent)", c.v, n, c.fields)
		}
	}
}
