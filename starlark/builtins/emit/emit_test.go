package emit_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/emit"
)

func TestEmit(t *testing.T) {
	rt := builtinstest.NewRuntime()
	globals, err := rt.Run(builtinstest.NewRegistry(emit.Register), `got = emit("orders.created", {"id": 7, "items": ["a"], "at": None})
emit(subject="orders.empty", payload=None)`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := globals["got"].String(); got != "None" {
		t.Fatalf("emit returned %s, want None", got)
	}
	want := []builtinstest.Message{
		{Subject: "orders.created", Payload: `{"at":null,"id":7,"items":["a"]}`},
		{Subject: "orders.empty", Payload: `null`},
	}
	if got := rt.Env.Published(); !reflect.DeepEqual(got, want) {
		t.Errorf("published %+v, want %+v", got, want)
	}
	if c := rt.Calls()[0]; c.Local || c.Args != `{"payload":{"at":null,"id":7,"items":["a"]},"subject":"orders.created"}` {
		t.Errorf("call = %+v", c)
	}
}

func TestEmitPublishFails(t *testing.T) {
	rt := builtinstest.NewRuntime()
	rt.Env.FailPublish(errors.New("nats: connection closed"))
	_, err := rt.Run(builtinstest.NewRegistry(emit.Register), `emit("orders.created", 1)`, nil)
	if !errors.Is(err, &builtins.StepError{Code: builtins.CodeTransport}) {
		t.Fatalf("error = %v, want a transport StepError", err)
	}
	var se *builtins.StepError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) carries no *builtins.StepError", err, err)
	}
	if !se.Retryable || se.Message != "emit orders.created: nats: connection closed" {
		t.Errorf("got %+v", se)
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
		{"emit empty", `emit("", {})`, `emit: for parameter subject: the subject is empty`},
		{"emit empty token", `emit("a..b", 1)`, `emit: for parameter subject: the subject "a..b" has an empty token (want e.g. "orders.created")`},
		{"emit leading dot", `emit(".a", 1)`, `emit: for parameter subject: the subject ".a" has an empty token (want e.g. "orders.created")`},
		{"emit trailing dot", `emit("a.", 1)`, `emit: for parameter subject: the subject "a." has an empty token (want e.g. "orders.created")`},
		{"emit star", `emit("orders.*", 1)`, `emit: for parameter subject: the subject "orders.*" contains the wildcard '*'; emit needs a literal subject`},
		{"emit gt", `emit("orders.>", 1)`, `emit: for parameter subject: the subject "orders.>" contains the wildcard '>'; emit needs a literal subject`},
		{"emit space", `emit("orders created", 1)`, `emit: for parameter subject: the subject "orders created" contains whitespace at byte 6`},
		{"emit drover", `emit("drover.journal.x", 1)`, `emit: for parameter subject: the subject "drover.journal.x" is reserved (subjects starting with "drover." belong to the engine)`},
		{"emit dollar", `emit("$JS.API.INFO", 1)`, `emit: for parameter subject: the subject "$JS.API.INFO" is reserved (subjects starting with "$" belong to the message bus)`},
		{"emit type", `emit(1, 1)`, `emit: for parameter subject: got int, want string`},
		{"emit missing payload", `emit("a")`, `emit: missing argument for payload`},
		{"emit payload not json", `emit("a", [1, float("nan")])`, `emit: for parameter payload: builtins: value is not JSON: value[1] is NaN, which JSON cannot hold`},
	}
	r := builtinstest.NewRegistry(emit.Register)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { builtinstest.CheckBadCall(t, r, tt.src, tt.wantErr) })
	}
}
