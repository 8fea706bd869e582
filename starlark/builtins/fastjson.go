package builtins

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"

	"go.starlark.net/starlark"
)

// appendCanonical appends the canonical JSON of v for the types ToJSON
// produces, without reflection. ok is false for any other type (the caller
// falls back to encoding/json).
func appendCanonical(buf []byte, v any) (_ []byte, ok bool) {
	switch v := v.(type) {
	case nil:
		return append(buf, "null"...), true
	case bool:
		return strconv.AppendBool(buf, v), true
	case string:
		return AppendJSONString(buf, v), true
	case json.Number:
		return append(buf, v...), true
	case int:
		return strconv.AppendInt(buf, int64(v), 10), true
	case int64:
		return strconv.AppendInt(buf, v, 10), true
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return buf, false
		}
		b, err := json.Marshal(v) // encoding/json's float format
		if err != nil {
			return buf, false
		}
		return append(buf, b...), true
	case []any:
		buf = append(buf, '[')
		for i, x := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, ok = appendCanonical(buf, x); !ok {
				return buf, false
			}
		}
		return append(buf, ']'), true
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = AppendJSONString(buf, k)
			buf = append(buf, ':')
			if buf, ok = appendCanonical(buf, v[k]); !ok {
				return buf, false
			}
		}
		return append(buf, '}'), true
	}
	return buf, false
}

// AppendJSONString appends s as a JSON string, escaped as encoding/json does
// with SetEscapeHTML(false).
func AppendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// jsonDecoder turns JSON text straight into Starlark values: objects become
// dicts (keys in document order, which for canonical JSON is sorted), integral
// numbers ints, other numbers floats.
type jsonDecoder struct {
	data []byte
	i    int
}

func (d *jsonDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrNotJSON, d.i, fmt.Sprintf(format, args...))
}

func (d *jsonDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value(depth int) (starlark.Value, error) {
	if depth > 1000 {
		return nil, d.errorf("nested too deeply")
	}
	d.space()
	if d.i >= len(d.data) {
		return nil, d.errorf("unexpected end of JSON")
	}
	switch c := d.data[d.i]; {
	case c == '{':
		d.i++
		dict := starlark.NewDict(4)
		d.space()
		if d.i < len(d.data) && d.data[d.i] == '}' {
			d.i++
			return dict, nil
		}
		for {
			d.space()
			if d.i >= len(d.data) || d.data[d.i] != '"' {
				return nil, d.errorf("want an object key")
			}
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			d.space()
			if d.i >= len(d.data) || d.data[d.i] != ':' {
				return nil, d.errorf("want ':'")
			}
			d.i++
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			dict.SetKey(starlark.String(k), v)
			d.space()
			if d.i < len(d.data) && d.data[d.i] == ',' {
				d.i++
				continue
			}
			if d.i < len(d.data) && d.data[d.i] == '}' {
				d.i++
				return dict, nil
			}
			return nil, d.errorf("want ',' or '}'")
		}
	case c == '[':
		d.i++
		var elems []starlark.Value
		d.space()
		if d.i < len(d.data) && d.data[d.i] == ']' {
			d.i++
			return starlark.NewList(elems), nil
		}
		for {
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			elems = append(elems, v)
			d.space()
			if d.i < len(d.data) && d.data[d.i] == ',' {
				d.i++
				continue
			}
			if d.i < len(d.data) && d.data[d.i] == ']' {
				d.i++
				return starlark.NewList(elems), nil
			}
			return nil, d.errorf("want ',' or ']'")
		}
	case c == '"':
		s, err := d.str()
		return starlark.String(s), err
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []struct {
			text string
			v    starlark.Value
		}{{"true", starlark.True}, {"false", starlark.False}, {"null", starlark.None}} {
			if len(d.data)-d.i >= len(lit.text) && string(d.data[d.i:d.i+len(lit.text)]) == lit.text {
				d.i += len(lit.text)
				return lit.v, nil
			}
		}
		return nil, d.errorf("invalid literal")
	case c == '-' || c >= '0' && c <= '9':
		start := d.i
		integral := true
		for d.i < len(d.data) {
			c := d.data[d.i]
			if c == '.' || c == 'e' || c == 'E' {
				integral = false
			} else if !(c == '-' || c == '+' || c >= '0' && c <= '9') {
				break
			}
			d.i++
		}
		num := string(d.data[start:d.i])
		if !jsonNumber(num) { // 01, 1., 1.e5, -: numbers strconv reads and JSON does not
			return nil, d.errorf("bad number %q", num)
		}
		if integral {
			if n, err := strconv.ParseInt(num, 10, 64); err == nil {
				return starlark.MakeInt64(n), nil
			}
			if bi, ok := new(big.Int).SetString(num, 10); ok {
				return starlark.MakeBigInt(bi), nil
			}
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return nil, d.errorf("bad number %q", num)
		}
		return starlark.Float(f), nil
	}
	return nil, d.errorf("unexpected character %q", d.data[d.i])
}

// jsonNumber reports whether s is a number as JSON writes one:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? (FuzzDecodeValue found
// that "01" was read as 1).
func jsonNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// str reads a JSON string at d.i. Bytes that are not UTF-8 become U+FFFD,
// as encoding/json makes them (FuzzDecodeValue found the difference).
func (d *jsonDecoder) str() (string, error) {
	start := d.i
	d.i++ // opening quote
	ascii := true
	for d.i < len(d.data) {
		switch c := d.data[d.i]; {
		case c == '"':
			d.i++
			if s := d.data[start+1 : d.i-1]; ascii || utf8.Valid(s) {
				return string(s), nil
			}
			var s string // each byte that is not UTF-8 made U+FFFD, by encoding/json itself
			if err := json.Unmarshal(d.data[start:d.i], &s); err != nil {
				return "", d.errorf("bad string: %v", err)
			}
			return s, nil
		case c == '\\':
			return d.escapedStr(start)
		case c < 0x20:
			return "", d.errorf("control character in string")
		default:
			ascii = ascii && c < utf8.RuneSelf
			d.i++
		}
	}
	return "", d.errorf("unterminated string")
}

// escapedStr reads a string with escapes through encoding/json.
func (d *jsonDecoder) escapedStr(start int) (string, error) {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case '\\':
			d.i += 2
		case '"':
			d.i++
			var s string
			if err := json.Unmarshal(d.data[start:d.i], &s); err != nil {
				return "", d.errorf("bad string: %v", err)
			}
			return s, nil
		default:
			d.i++
		}
	}
	return "", d.errorf("unterminated string")
}
