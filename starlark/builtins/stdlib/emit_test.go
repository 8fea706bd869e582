package stdlib

import (
	"errors"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
)

func TestEmit(t *testing.T) {
	rt := newFake(t)
	if got := rt.got(t, `got = emit("orders.created", {"id": 7, "items": ["a"], "at": None})
emit(subject="orders.empty", payload=None)`, nil); got != "None" {
		t.Fatalf("emit returned %s, want None", got)
	}
	want := []published{
		{"orders.created", `{"at":null,"id":7,"items":["a"]}`},
		{"orders.empty", `null`},
	}
	if len(rt.env.published) != len(want) {
		t.Fatalf("published %+v, want %+v", rt.env.published, want)
	}
	for i, p := range rt.env.published {
		if p != want[i] {
			t.Errorf("published[%d] = %+v, want %+v", i, p, want[i])
		}
	}
	if c := rt.stepCalls()[0]; c.local || c.args != `{"payload":{"at":null,"id":7,"items":["a"]},"subject":"orders.created"}` {
		t.Errorf("call = %+v", c)
	}
}

func TestEmitPublishFails(t *testing.T) {
	rt := newFake(t)
	rt.env.publishErr = errors.New("nats: connection closed")
	_, err := rt.run(t, `emit("orders.created", 1)`, nil)
	if !errors.Is(err, &builtins.StepError{Code: builtins.CodeTransport}) {
		t.Fatalf("error = %v, want a transport StepError", err)
	}
	if se := stepErr(t, err); !se.Retryable || se.Message != "emit orders.created: nats: connection closed" {
		t.Errorf("got %+v", se)
	}
}
