package builtins

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"go.starlark.net/starlark"
)

// TestCanonicalMatchesEncodingJSON checks the reflection-free encoder against
// encoding/json (sorted keys, no HTML escaping) on varied values.
func TestCanonicalMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, "", "plain", "quote\" back\\ nl\n tab\t ctl\x01 html<&> uni é ☃ \u2028 bad\xff",
		json.Number("12345678901234567890"), 3.25, 0.1, 1e21, -0.0,
		[]any{}, map[string]any{}, []any{1, "a", nil}, int64(-7), 42,
		map[string]any{"b": []any{map[string]any{"z": 1, "a": 2}}, "a": "x", "é": true},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		values = append(values, randomValue(r, 0))
	}
	for _, v := range values {
		got, ok := appendCanonical(nil, v)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimRight(buf.String(), "\n")
		if !ok || string(got) != want {
			t.Fatalf("appendCanonical(%#v) = %s (ok %v), encoding/json %s", v, got, ok, want)
		}
		if !utf8.Valid(got) || strings.Contains(want, `\ufffd`) {
			continue // invalid UTF-8 becomes U+FFFD: not a round trip, as with encoding/json
		}
		back, err := DecodeValue(got)
		if err != nil {
			t.Fatalf("DecodeValue(%s): %v", got, err)
		}
		x, err := ToJSON(back)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := Canonical(x)
		if !bytes.Equal(again, got) {
			t.Fatalf("round trip %s → %s", got, again)
		}
	}
}

func randomValue(r *rand.Rand, depth int) any {
	switch n := r.IntN(7); {
	case depth > 3 || n == 0:
		return json.Number(strconv.FormatInt(r.Int64N(1<<40)-1<<39, 10))
	case n == 1:
		return rune2s(r)
	case n == 2:
		return r.Float64() * 1000
	case n == 3:
		m := map[string]any{}
		for i := 0; i < r.IntN(4); i++ {
			m[rune2s(r)] = randomValue(r, depth+1)
		}
		return m
	case n == 4:
		var l []any
		for i := 0; i < r.IntN(4); i++ {
			l = append(l, randomValue(r, depth+1))
		}
		if l == nil {
			l = []any{}
		}
		return l
	case n == 5:
		return r.IntN(2) == 0
	}
	return nil
}

func rune2s(r *rand.Rand) string {
	const alphabet = "ab\"\\\n\x02é☃<>&"
	rs := []rune(alphabet)
	var b strings.Builder
	for i := 0; i < r.IntN(6); i++ {
		b.WriteRune(rs[r.IntN(len(rs))])
	}
	return b.String()
}

func TestDecodeValueErrors(t *testing.T) {
	// 01, 1., 1.e5, -, -01 and 00: numbers strconv reads and JSON does not
	// (FuzzDecodeValue found "01" read as 1).
	for _, bad := range []string{`{`, `[1,`, `"abc`, `tru`, `{"a" 1}`, `1 2`, `[1,]`, "\"\x01\"", `01`, `1.`, `1.e5`, `-`, `-01`, `00`, `1e`, `[01]`} {
		if _, err := DecodeValue([]byte(bad)); err == nil {
			t.Errorf("DecodeValue(%q): no error", bad)
		}
	}
	// Decode, the reference, refuses a closing bracket after the value (found: "0}").
	for _, bad := range []string{`0}`, `1]`, `{}}`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q): no error", bad)
		}
	}
	// Bytes that are not UTF-8 read as U+FFFD each, as encoding/json reads them (found).
	if v, err := DecodeValue([]byte("\"a\xff\xfeb\"")); err != nil || string(v.(starlark.String)) != "a\ufffd\ufffdb" {
		t.Errorf("DecodeValue of a string with bytes that are not UTF-8: %q %v", v, err)
	}
	v, err := DecodeValue([]byte(` {"b": [1, 2.5, -3e2, "\u00e9\n", null, true]} `))
	if err != nil || v.String() != `{"b": [1, 2.5, -300.0, "é\n", None, True]}` {
		t.Fatalf("%v %v", v, err)
	}
}
