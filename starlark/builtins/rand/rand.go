// Package rand implements the random step builtins of Script API v0:
//
//	rand.int(n) -> int in [0, n)          a step, local
//	uuid() -> string, a random UUID v4    a step, local
//
// Both draw from crypto/rand. They are journaled, so a replay sees the same
// values, and local: they always execute on the node coordinating the run.
//
// The package is named after the script module; it imports crypto/rand as
// cryptorand.
//
// Its init registers the builtins into builtins.Default; Register adds them to
// another registry.
package rand

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
)

func init() { Register(builtins.Default) }

// Register adds rand.int and uuid to r. Like Registry.MustRegister it panics
// if one of the names is taken.
func Register(r *builtins.Registry) {
	r.MustRegister(&builtins.Step{
		Name:  "rand.int",
		Doc:   "a random int in [0, n), journaled",
		Local: true,
		Args:  intArgs,
		Exec:  intExec,
	})
	r.MustRegister(&builtins.Step{
		Name:  "uuid",
		Doc:   "a random UUID (version 4), journaled",
		Local: true,
		Args:  builtins.NoArgs,
		Exec: func(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
			u, err := newUUID()
			if err != nil {
				return nil, builtins.Errorf(builtins.CodeInternal, "uuid: %v", err)
			}
			return u, nil
		},
	})
}

func intArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	var n starlark.Int
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "n", &n); err != nil {
		return nil, err
	}
	if n.Sign() <= 0 {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "n", Err: fmt.Errorf("got %s, want an int > 0", n)}
	}
	return map[string]any{"n": json.Number(n.String())}, nil
}

func intExec(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
	var a struct {
		N json.Number `json:"n"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "rand.int: bad arguments: %v", err)
	}
	n, ok := new(big.Int).SetString(string(a.N), 10)
	if !ok || n.Sign() <= 0 {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "rand.int: bad n %q", a.N)
	}
	x, err := cryptorand.Int(cryptorand.Reader, n)
	if err != nil {
		return nil, builtins.Errorf(builtins.CodeInternal, "rand.int: %v", err)
	}
	return json.Number(x.String()), nil
}

// newUUID returns a random UUID version 4 (RFC 9562) in its canonical form.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := cryptorand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
