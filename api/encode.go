package api

import (
	"bytes"
	"encoding/json"
)

// EncodeJSON encodes a journal entry, envelope, export or API value. Unlike
// json.Marshal it leaves <, > and & alone, so canonical arguments embedded as
// json.RawMessage keep their exact bytes (replay compares them).
func EncodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
