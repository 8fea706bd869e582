package builtins

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// ToJSON converts a Starlark value into a JSON-encodable Go value: None → nil,
// bool, int → json.Number, float → float64, string, list/tuple → []any,
// dict/struct → map[string]any. The error names the path of the offending value
// (e.g. `result["items"][2]`) and wraps ErrNotJSON.
func ToJSON(v starlark.Value) (any, error) { return toJSON(v, "value", 0) }

func toJSON(v starlark.Value, path string, depth int) (any, error) {
	if depth > 100 {
		return nil, fmt.Errorf("%w: %s nests deeper than 100 levels (is it cyclic?)", ErrNotJSON, path)
	}
	if m, ok := v.(JSONMarshaler); ok {
		return m.JSONValue(), nil
	}
	switch v := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(v), nil
	case starlark.Int:
		return json.Number(v.String()), nil
	case starlark.Float:
		f := float64(v)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%w: %s is %v, which JSON cannot hold", ErrNotJSON, path, f)
		}
		return f, nil
	case starlark.String:
		return string(v), nil
	case starlark.IterableMapping:
		out := make(map[string]any)
		for _, kv := range v.Items() {
			k, ok := kv[0].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("%w: %s has a key of type %s; JSON object keys must be strings", ErrNotJSON, path, kv[0].Type())
			}
			x, err := toJSON(kv[1], fmt.Sprintf("%s[%q]", path, string(k)), depth+1)
			if err != nil {
				return nil, err
			}
			out[string(k)] = x
		}
		return out, nil
	case *starlarkstruct.Struct:
		out := make(map[string]any)
		for _, name := range v.AttrNames() {
			f, err := v.Attr(name)
			if err != nil {
				return nil, err
			}
			x, err := toJSON(f, path+"."+name, depth+1)
			if err != nil {
				return nil, err
			}
			out[name] = x
		}
		return out, nil
	case starlark.Indexable: // list, tuple
		out := make([]any, v.Len())
		for i := range out {
			x, err := toJSON(v.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s is a %s, which has no JSON form", ErrNotJSON, path, v.Type())
}

// JSONMarshaler is implemented by Starlark values of builtins (such as an HTTP
// response) that know their own JSON form.
type JSONMarshaler interface {
	JSONValue() any
}

// Canonical encodes v (a JSON-encodable Go value) as canonical JSON: object keys
// sorted, no insignificant space, no HTML escaping.
func Canonical(v any) (json.RawMessage, error) {
	if out, ok := appendCanonical(make([]byte, 0, 64), v); ok {
		return out, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// FromJSON converts a value decoded with json.Decoder.UseNumber into Starlark:
// objects become dicts with sorted keys, numbers become int when integral.
func FromJSON(x any) (starlark.Value, error) {
	switch x := x.(type) {
	case nil:
		return starlark.None, nil
	case bool:
		return starlark.Bool(x), nil
	case string:
		return starlark.String(x), nil
	case json.Number:
		s := string(x)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return starlark.MakeInt64(i), nil
		}
		if bi, ok := new(big.Int).SetString(s, 10); ok {
			return starlark.MakeBigInt(bi), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("%w: bad number %q", ErrNotJSON, s)
		}
		return starlark.Float(f), nil
	case float64:
		return starlark.Float(x), nil
	case []any:
		elems := make([]starlark.Value, len(x))
		for i, e := range x {
			v, err := FromJSON(e)
			if err != nil {
				return nil, err
			}
			elems[i] = v
		}
		return starlark.NewList(elems), nil
	case map[string]any:
		d := starlark.NewDict(len(x))
		for _, k := range sortedKeys(x) {
			v, err := FromJSON(x[k])
			if err != nil {
				return nil, err
			}
			if err := d.SetKey(starlark.String(k), v); err != nil {
				return nil, err
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w: unexpected Go type %T", ErrNotJSON, x)
}

// Decode parses JSON keeping numbers exact (json.Number).
func Decode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	// Only space may follow (dec.More would let a "}" or "]" pass: "0}";
	// FuzzDecodeValue found it).
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return x, nil
}

// DecodeValue parses a JSON result into a Starlark value.
func DecodeValue(raw json.RawMessage) (starlark.Value, error) {
	if len(raw) == 0 {
		return starlark.None, nil
	}
	d := jsonDecoder{data: raw}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.space(); d.i != len(raw) {
		return nil, d.errorf("unexpected data after the JSON value")
	}
	return v, nil
}
