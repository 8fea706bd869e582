package stdlib

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
)

func registerRand(r *builtins.Registry) {
	r.MustRegister(&builtins.Step{
		Name:  "rand.int",
		Doc:   "a random int in [0, n), journaled",
		Local: true,
		Args:  randIntArgs,
		Exec:  randIntExec,
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

func randIntArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	var n starlark.Int
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "n", &n); err != nil {
		return nil, err
	}
	if n.Sign() <= 0 {
		return nil, &builtins.ArgError{Func: b.Name(), Param: "n", Err: fmt.Errorf("got %s, want an int > 0", n)}
	}
	return map[string]any{"n": json.Number(n.String())}, nil
}

func randIntExec(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
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
	x, err := rand.Int(rand.Reader, n)
	if err != nil {
		return nil, builtins.Errorf(builtins.CodeInternal, "rand.int: %v", err)
	}
	return json.Number(x.String()), nil
}

// newUUID returns a random UUID version 4 (RFC 9562) in its canonical form.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
