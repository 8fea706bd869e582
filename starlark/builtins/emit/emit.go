// Package emit implements the emit step builtin of Script API v0:
//
//	emit(subject, payload) -> None
//
// It publishes payload, as canonical JSON, on the message bus subject through
// the executing node (builtins.Env.Publish). A subject is dot-separated
// non-empty tokens without whitespace or wildcards, outside the spaces
// reserved for the engine ("drover.") and the bus ("$"). A failed publish is a
// retryable transport error.
//
// Its init registers the builtin into builtins.Default; Register adds it to
// another registry.
package emit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
)

func init() { Register(builtins.Default) }

// Register adds emit to r. Like Registry.MustRegister it panics if the name
// is taken.
func Register(r *builtins.Registry) {
	r.MustRegister(&builtins.Step{
		Name: "emit",
		Doc:  "publish a JSON payload on a subject",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var (
				subject subjectArg
				payload starlark.Value
			)
			if err := builtins.UnpackArgs(b.Name(), args, kwargs, "subject", &subject, "payload", &payload); err != nil {
				return nil, err
			}
			v, err := builtins.ToJSON(payload)
			if err != nil {
				return nil, &builtins.ArgError{Func: b.Name(), Param: "payload", Err: err}
			}
			return map[string]any{"subject": string(subject), "payload": v}, nil
		},
		Exec: exec,
	})
}

// subjectArg unpacks the subject of emit: dot-separated non-empty tokens without
// whitespace or wildcards, outside the reserved "drover." and "$" spaces.
type subjectArg string

// Unpack implements starlark.Unpacker.
func (s *subjectArg) Unpack(v starlark.Value) error {
	str, ok := v.(starlark.String)
	if !ok {
		return fmt.Errorf("got %s, want string", v.Type())
	}
	if err := checkSubject(string(str)); err != nil {
		return err
	}
	*s = subjectArg(str)
	return nil
}

func checkSubject(s string) error {
	q := starlark.String(s).String()
	if s == "" {
		return fmt.Errorf("the subject is empty")
	}
	for i, r := range s {
		switch {
		case unicode.IsSpace(r):
			return fmt.Errorf("the subject %s contains whitespace at byte %d", q, i)
		case !unicode.IsPrint(r):
			return fmt.Errorf("the subject %s contains the non-printable character %U", q, r)
		case r == '*' || r == '>':
			return fmt.Errorf("the subject %s contains the wildcard %q; emit needs a literal subject", q, r)
		}
	}
	if strings.HasPrefix(s, "$") {
		return fmt.Errorf(`the subject %s is reserved (subjects starting with "$" belong to the message bus)`, q)
	}
	tokens := strings.Split(s, ".")
	for _, t := range tokens {
		if t == "" {
			return fmt.Errorf(`the subject %s has an empty token (want e.g. "orders.created")`, q)
		}
	}
	if tokens[0] == "drover" {
		return fmt.Errorf(`the subject %s is reserved (subjects starting with "drover." belong to the engine)`, q)
	}
	return nil
}

func exec(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
	var c struct {
		Subject string          `json:"subject"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "emit: bad arguments: %v", err)
	}
	if err := checkSubject(c.Subject); err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "emit: %v", err)
	}
	payload := []byte(c.Payload)
	if len(payload) == 0 {
		payload = []byte("null")
	}
	if err := env.Publish(ctx, c.Subject, payload); err != nil {
		return nil, builtins.TransportError(ctx, "emit "+c.Subject, err)
	}
	return nil, nil
}
