package api

import (
	"bytes"
	"encoding/json"
	"time"
)

// EncodeJSON encodes a journal entry, envelope, export or API value. Unlike
// json.Marshal it leaves <, > and & alone, so canonical arguments embedded as
// json.RawMessage keep their exact bytes (replay compares them).
func EncodeJSON(v any) ([]byte, error) {
	return AppendJSON(nil, v)
}

// AppendJSON appends v's encoding, as EncodeJSON writes it, to buf.
func AppendJSON(buf []byte, v any) ([]byte, error) {
	if a, ok := v.(interface{ AppendJSON([]byte) []byte }); ok && encodable(v) {
		if buf == nil {
			buf = make([]byte, 0, 256+sizeHint(v))
		}
		return a.AppendJSON(buf), nil
	}
	b := bytes.NewBuffer(buf)
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// sizeHint is the length of v's raw JSON fields: its encoding is about 256
// bytes more.
func sizeHint(v any) int {
	switch e := v.(type) {
	case ResultEntry:
		if e.Call != nil {
			return len(e.Value) + len(e.Call.Args)
		}
		return len(e.Value)
	case CallEntry:
		return len(e.Args)
	}
	return 0
}

// encodable reports whether v's hand-written encoding applies: its times are
// in the years MarshalJSON accepts (0 to 9999); otherwise encoding/json
// reports the error.
func encodable(v any) bool {
	ok := func(t time.Time) bool { y := t.Year(); return y >= 0 && y <= 9999 }
	switch e := v.(type) {
	case ResultEntry:
		return ok(e.Start) && (e.Call == nil || ok(e.Call.Time))
	case CallEntry:
		return ok(e.Time)
	}
	return false
}
