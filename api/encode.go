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
	if a, ok := v.(interface{ AppendJSON([]byte) []byte }); ok && encodable(v) {
		return a.AppendJSON(make([]byte, 0, 256)), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
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
