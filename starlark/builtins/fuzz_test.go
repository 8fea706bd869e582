package builtins

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

// FuzzDecodeValue checks the journal's hand-written JSON decoder and encoder
// against encoding/json. DecodeValue gives a step's journaled value to its
// script, live and on replay: on any input it and encoding/json (Decode, then
// FromJSON) both refuse it or both give the same Starlark value, down to its
// type (a dict's keys come in the document's order from DecodeValue, sorted
// from FromJSON; the journal's values have them sorted). Canonical writes what is journaled:
// for the value decoded, its fast path writes what encoding/json writes. And
// the journal's form of a value is stable: encoded and decoded twice, it
// encodes to the same bytes again (one trip can change it: a float -0.0 is
// written -0, which reads back as the int 0).
func FuzzDecodeValue(f *testing.F) {
	for _, s := range []string{
		`null`, `true`, `false`, `0`, `-7`, `3.25`, `-0.0`, `1e21`, `1e400`, `12345678901234567890`,
		`""`, `"é ☃ \u2028 \ud83d\ude00"`, `"\ud800"`, "\"bad \xff utf8\"", `"tab\tnl"`,
		`[]`, `{}`, `[1,"a",null,[{}]]`, `{"b":{"z":1,"a":2},"a":"x"}`, `{"a":1,"a":2}`,
		` [ 1 , 2 ] `, `[`, `{"a"}`, `1 2`, `01`, `.5`, `+1`, `"\x01"`, `[1,]`, `nul`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(bytes.TrimSpace(raw)) == 0 {
			return // DecodeValue reads no value as None (a step without one); encoding/json refuses it
		}
		got, err := DecodeValue(raw)
		want, wantErr := decodeReference(raw)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("DecodeValue(%q): %v, %v; encoding/json: %v, %v", raw, got, err, want, wantErr)
		}
		if err != nil {
			return
		}
		if g, w := describe(got), describe(want); g != w {
			t.Fatalf("DecodeValue(%q) = %s; encoding/json %s", raw, g, w)
		}
		x, err := ToJSON(got)
		if err != nil {
			t.Fatalf("ToJSON(%s): %v", got, err)
		}
		var ref bytes.Buffer
		enc := json.NewEncoder(&ref)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(x); err != nil {
			t.Fatalf("encoding/json of %v: %v", x, err)
		}
		if fast, ok := appendCanonical(nil, x); ok && !bytes.Equal(fast, bytes.TrimSuffix(ref.Bytes(), []byte("\n"))) {
			t.Fatalf("Canonical of %q's value: %q; encoding/json %q", raw, fast, ref.Bytes())
		}
		once := recanonical(t, canonical(t, got))
		if twice := recanonical(t, once); !bytes.Equal(once, twice) {
			t.Fatalf("%q: journaled as %q, then %q", raw, once, twice)
		}
	})
}

// recanonical decodes journaled bytes and encodes the value again.
func recanonical(t *testing.T, data []byte) []byte {
	t.Helper()
	v, err := DecodeValue(data)
	if err != nil {
		t.Fatalf("DecodeValue(%q), the journal's own encoding: %v", data, err)
	}
	return canonical(t, v)
}

// decodeReference decodes raw through encoding/json (numbers kept exact).
func decodeReference(raw []byte) (starlark.Value, error) {
	x, err := Decode(raw)
	if err != nil {
		return nil, err
	}
	return FromJSON(x)
}

// canonical is v's journal encoding.
func canonical(t *testing.T, v starlark.Value) []byte {
	t.Helper()
	x, err := ToJSON(v)
	if err != nil {
		t.Fatalf("ToJSON(%s): %v", v, err)
	}
	out, err := Canonical(x)
	if err != nil {
		t.Fatalf("Canonical(%v): %v", x, err)
	}
	return out
}

// describe writes v with each value's type, so that 1 and 1.0 differ, and
// a dict's entries sorted.
func describe(v starlark.Value) string {
	switch v := v.(type) {
	case *starlark.List:
		var b strings.Builder
		b.WriteString("list:[")
		for i := 0; i < v.Len(); i++ {
			b.WriteString(describe(v.Index(i)) + ",")
		}
		return b.String() + "]"
	case *starlark.Dict:
		var entries []string
		for _, kv := range v.Items() {
			entries = append(entries, describe(kv[0])+"="+describe(kv[1]))
		}
		slices.Sort(entries)
		return "dict:{" + strings.Join(entries, ",") + "}"
	}
	return v.Type() + ":" + v.String()
}
