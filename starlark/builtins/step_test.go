package builtins

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// A builtin that panics fails its step with an internal error naming it;
// the node goes on.
func TestSafeExec(t *testing.T) {
	s := &Step{Name: "t.boom", Exec: func(context.Context, Env, json.RawMessage) (any, error) { panic("index out of range") }}
	_, err := s.SafeExec(context.Background(), nil, nil)
	var serr *StepError
	if !errors.As(err, &serr) || serr.Code != CodeInternal || !strings.Contains(serr.Message, "t.boom panicked: index out of range") {
		t.Fatalf("err = %v, want an internal step error naming the builtin", err)
	}
	ok := &Step{Name: "t.ok", Exec: func(context.Context, Env, json.RawMessage) (any, error) { return 1, nil }}
	if v, err := ok.SafeExec(context.Background(), nil, nil); err != nil || v != 1 {
		t.Fatalf("t.ok: %v %v", v, err)
	}
}
