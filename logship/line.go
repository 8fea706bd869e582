package logship

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// A line is read without decoding it: fields walks a JSON object's
// top-level fields, skipping nested values, so that finding a line's time
// (for its daily index) costs a scan, not a decode.

// fields calls f with each top-level key (its raw text between the quotes)
// and raw value of the JSON object line, until f returns false. It reports
// whether line reads as an object; it does not check nested values.
func fields(line []byte, f func(key, value []byte) bool) bool {
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	i = skipSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		return skipSpace(line, i+1) == len(line)
	}
	for {
		kEnd, ok := skipString(line, i)
		if !ok {
			return false
		}
		key := line[i+1 : kEnd-1]
		i = skipSpace(line, kEnd)
		if i >= len(line) || line[i] != ':' {
			return false
		}
		i = skipSpace(line, i+1)
		vEnd, ok := skipValue(line, i)
		if !ok {
			return false
		}
		if !f(key, line[i:vEnd]) {
			return true
		}
		i = skipSpace(line, vEnd)
		if i >= len(line) {
			return false
		}
		switch line[i] {
		case ',':
			i = skipSpace(line, i+1)
		case '}':
			return skipSpace(line, i+1) == len(line)
		default:
			return false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipString returns the index after the string that begins at b[i].
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index after the value that begins at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	default: // a number, true, false, null
		start := i
	scan:
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				break scan
			}
		}
		return i, i > start
	}
}

// lineTime returns the time in the top-level string field key of line
// (RFC 3339, with or without fractions of a second).
func lineTime(line []byte, key string) (time.Time, bool) {
	var raw []byte
	fields(line, func(k, v []byte) bool {
		if string(k) == key {
			raw = v
			return false
		}
		return true
	})
	if len(raw) < 2 || raw[0] != '"' {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw[1:len(raw)-1]))
	return t, err == nil
}

// smallField is the largest value a cut line keeps whole, besides its
// message.
const smallField = 512

// cut returns line cut to a JSON object of at most limit bytes (limit >=
// MinMaxLine): its top-level fields of up to smallField bytes, in order, as
// many as fit in half of limit; its message (the string field msgKey), cut
// at a character's boundary to fill the rest; and "truncated":true,
// "original_bytes":N. Larger fields are left out. A line that is not a JSON
// object becomes {"message": its beginning, ...}.
func cut(line []byte, limit int, msgKey string) []byte {
	tail := `"truncated":true,"original_bytes":` + strconv.Itoa(len(line))
	budget := limit - len(tail) - len("{,}")
	type field struct{ key, value []byte }
	var all []field
	msg := -1
	ok := fields(line, func(k, v []byte) bool {
		switch string(k) {
		case "truncated", "original_bytes":
			return true
		case msgKey:
			if v[0] == '"' && msg < 0 {
				msg = len(all)
			}
		}
		all = append(all, field{k, v})
		return true
	})
	if !ok {
		return cutText(line, budget, msgKey, tail)
	}
	cost := func(f field) int { return len(f.key) + len(`"":,`) + len(f.value) }
	reserve := 0
	if msg >= 0 {
		reserve = min(cost(all[msg]), budget/2)
	}
	used := 0
	keep := make([]bool, len(all))
	for i, f := range all {
		if i != msg && len(f.value) <= smallField && used+cost(f) <= budget-reserve {
			keep[i], used = true, used+cost(f)
		}
	}
	if msg >= 0 {
		m := all[msg]
		if avail := budget - used - len(m.key) - len(`"":,`); len(m.value) > avail {
			var s string
			if json.Unmarshal(m.value, &s) != nil {
				return cutText(line, budget, msgKey, tail)
			}
			all[msg].value = quoteCut(s, avail)
		}
		keep[msg] = true
	}
	out := make([]byte, 0, limit)
	out = append(out, '{')
	for i, f := range all {
		if keep[i] {
			out = append(out, '"')
			out = append(out, f.key...)
			out = append(out, `":`...)
			out = append(out, f.value...)
			out = append(out, ',')
		}
	}
	out = append(out, tail...)
	out = append(out, '}')
	if !json.Valid(out) { // a field's value was not JSON
		return cutText(line, budget, msgKey, tail)
	}
	return out
}

// cutText is cut of a line that is not a JSON object.
func cutText(line []byte, budget int, msgKey, tail string) []byte {
	key, _ := json.Marshal(msgKey)
	out := append([]byte{'{'}, key...)
	out = append(out, ':')
	out = append(out, quoteCut(string(line), budget-len(key)-len(":,"))...)
	out = append(out, ',')
	out = append(out, tail...)
	return append(out, '}')
}

// quoteCut returns the JSON string of as much of s's beginning as fits in
// limit bytes, quotes and escapes included, cut at a character's boundary.
func quoteCut(s string, limit int) []byte {
	n := limit - 2
	for {
		n = min(max(n, 0), len(s))
		for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		q := quote(s[:n])
		if len(q) <= limit || n == 0 {
			return q
		}
		n -= len(q) - limit
	}
}

// quote returns the JSON string of s, without escaping <, > and &.
func quote(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}
