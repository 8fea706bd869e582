// Package kv implements the kv.* step builtins of Script API v0, over the
// cluster-wide key/value store of the node that executes the call
// (builtins.Env.KV):
//
//	kv.get(key) -> value or None
//	kv.put(key, value) -> None
//	kv.delete(key) -> None
//
// Values are stored as canonical JSON. A key is a non-empty string of at most
// MaxKeyLen bytes of printable UTF-8 without whitespace. A store that cannot be
// reached fails the step with a retryable transport error.
//
// Its init registers the builtins into builtins.Default; Register adds them to
// another registry.
package kv

import (
	"context"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
)

// MaxKeyLen is the longest key kv.* accept, in bytes.
const MaxKeyLen = 512

func init() { Register(builtins.Default) }

// Register adds kv.get, kv.put and kv.delete to r. Like Registry.MustRegister
// it panics if one of the names is taken.
func Register(r *builtins.Registry) {
	r.MustRegister(&builtins.Step{
		Name: "kv.get",
		Doc:  "the JSON value stored under a key, or None",
		Args: keyArgs,
		Exec: getExec,
	})
	r.MustRegister(&builtins.Step{
		Name: "kv.put",
		Doc:  "store a JSON value under a key",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var (
				key   keyArg
				value starlark.Value
			)
			if err := builtins.UnpackArgs(b.Name(), args, kwargs, "key", &key, "value", &value); err != nil {
				return nil, err
			}
			v, err := builtins.ToJSON(value)
			if err != nil {
				return nil, &builtins.ArgError{Func: b.Name(), Param: "value", Err: err}
			}
			return map[string]any{"key": string(key), "value": v}, nil
		},
		Exec: putExec,
	})
	r.MustRegister(&builtins.Step{
		Name: "kv.delete",
		Doc:  "remove a key; removing a missing key is not an error",
		Args: keyArgs,
		Exec: deleteExec,
	})
}

// keyArgs is the Args of kv.get and kv.delete, which take only a key.
func keyArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	var key keyArg
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "key", &key); err != nil {
		return nil, err
	}
	return map[string]any{"key": string(key)}, nil
}

// keyArg unpacks a key: a non-empty string of at most MaxKeyLen bytes of
// printable UTF-8 without whitespace.
type keyArg string

// Unpack implements starlark.Unpacker.
func (k *keyArg) Unpack(v starlark.Value) error {
	s, ok := v.(starlark.String)
	if !ok {
		return fmt.Errorf("got %s, want string", v.Type())
	}
	if err := checkKey(string(s)); err != nil {
		return err
	}
	*k = keyArg(s)
	return nil
}

func checkKey(s string) error {
	q := starlark.String(s).String()
	switch {
	case s == "":
		return fmt.Errorf("the key is empty")
	case len(s) > MaxKeyLen:
		return fmt.Errorf("the key is %d bytes long, over the limit of %d", len(s), MaxKeyLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("the key %s is not valid UTF-8", q)
	}
	for i, r := range s {
		if unicode.IsSpace(r) {
			return fmt.Errorf("the key %s contains whitespace at byte %d", q, i)
		}
		if !unicode.IsPrint(r) {
			return fmt.Errorf("the key %s contains the non-printable character %U at byte %d", q, r, i)
		}
	}
	return nil
}

type call struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

func decode(name string, env builtins.Env, raw json.RawMessage) (call, builtins.KVStore, error) {
	var c call
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, nil, builtins.Errorf(builtins.CodeBadArgs, "%s: bad arguments: %v", name, err)
	}
	if err := checkKey(c.Key); err != nil {
		return c, nil, builtins.Errorf(builtins.CodeBadArgs, "%s: %v", name, err)
	}
	store := env.KV()
	if store == nil {
		return c, nil, builtins.Errorf(builtins.CodeInternal, "%s: node %s has no key/value store", name, env.Node())
	}
	return c, store, nil
}

func getExec(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
	c, store, err := decode("kv.get", env, raw)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("kv.get %q", c.Key)
	val, found, err := store.Get(ctx, c.Key)
	if err != nil {
		return nil, builtins.TransportError(ctx, what, err)
	}
	if !found {
		return nil, nil
	}
	if !json.Valid(val) {
		return nil, builtins.Errorf(builtins.CodeInternal, "%s: the stored value is not JSON (was it written by something other than kv.put?)", what)
	}
	return json.RawMessage(val), nil
}

func putExec(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
	c, store, err := decode("kv.put", env, raw)
	if err != nil {
		return nil, err
	}
	val := []byte(c.Value)
	if len(val) == 0 {
		val = []byte("null")
	}
	if err := store.Put(ctx, c.Key, val); err != nil {
		return nil, builtins.TransportError(ctx, fmt.Sprintf("kv.put %q", c.Key), err)
	}
	return nil, nil
}

func deleteExec(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
	c, store, err := decode("kv.delete", env, raw)
	if err != nil {
		return nil, err
	}
	if err := store.Delete(ctx, c.Key); err != nil {
		return nil, builtins.TransportError(ctx, fmt.Sprintf("kv.delete %q", c.Key), err)
	}
	return nil, nil
}
