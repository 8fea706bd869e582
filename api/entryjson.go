package api

import (
	"strconv"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
)

// The journal's most frequent entries, a step's call and result, are encoded
// without reflection: exactly the bytes EncodeJSON's encoding/json would
// write (TestEntryJSONMatchesEncodingJSON), in a fraction of the time. Their
// json.RawMessage fields (Value, Args) must be compact JSON, as
// builtins.Canonical writes every step value; they are copied as they are.

// AppendJSON appends the entry's JSON to buf.
func (r ResultEntry) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"step":`...)
	buf = builtins.AppendJSONString(buf, r.Step)
	if len(r.Value) > 0 {
		buf = append(buf, `,"value":`...)
		buf = append(buf, r.Value...)
	}
	if r.Error != nil {
		buf = append(buf, `,"error":{"code":`...)
		buf = builtins.AppendJSONString(buf, r.Error.Code)
		buf = append(buf, `,"message":`...)
		buf = builtins.AppendJSONString(buf, r.Error.Message)
		if r.Error.Retryable {
			buf = append(buf, `,"retryable":true`...)
		}
		buf = append(buf, '}')
	}
	buf = append(buf, `,"node":`...)
	buf = builtins.AppendJSONString(buf, r.Node)
	buf = append(buf, `,"attempts":`...)
	buf = strconv.AppendInt(buf, int64(r.Attempts), 10)
	buf = append(buf, `,"start":`...)
	buf = appendTime(buf, r.Start)
	buf = append(buf, `,"duration_ns":`...)
	buf = strconv.AppendInt(buf, int64(r.Duration), 10)
	if r.SpanID != "" {
		buf = append(buf, `,"span_id":`...)
		buf = builtins.AppendJSONString(buf, r.SpanID)
	}
	if r.Call != nil {
		buf = append(buf, `,"call":`...)
		buf = r.Call.AppendJSON(buf)
	}
	return append(buf, '}')
}

// AppendJSON appends the entry's JSON to buf.
func (c CallEntry) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"step":`...)
	buf = builtins.AppendJSONString(buf, c.Step)
	buf = append(buf, `,"builtin":`...)
	buf = builtins.AppendJSONString(buf, c.Builtin)
	buf = append(buf, `,"args":`...)
	if c.Args == nil {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, c.Args...)
	}
	buf = append(buf, `,"pos":`...)
	buf = builtins.AppendJSONString(buf, c.Pos)
	buf = append(buf, `,"node":`...)
	buf = builtins.AppendJSONString(buf, c.Node)
	if c.Reason != "" {
		buf = append(buf, `,"reason":`...)
		buf = builtins.AppendJSONString(buf, c.Reason)
	}
	buf = append(buf, `,"time":`...)
	buf = appendTime(buf, c.Time)
	return append(buf, '}')
}

// appendTime appends t as time.Time's MarshalJSON writes it (RFC 3339 with
// nanoseconds, quoted).
func appendTime(buf []byte, t time.Time) []byte {
	buf = append(buf, '"')
	buf = t.AppendFormat(buf, time.RFC3339Nano)
	return append(buf, '"')
}
