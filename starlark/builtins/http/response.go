package http

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
)

// Response is the value http.get, http.post and http.request return. Its
// attributes are status (int), headers (dict of lower-case names to strings,
// repeated headers joined with ", "), body (string) and json (the body decoded
// as JSON, or None if it is not JSON). An HTTP error status is a normal Response.
type Response struct {
	status  int
	headers *starlark.Dict
	body    string
	json    starlark.Value
	result  map[string]any // the journaled result, for JSONValue
}

var (
	_ starlark.HasAttrs      = (*Response)(nil)
	_ builtins.JSONMarshaler = (*Response)(nil)
	_ json.Marshaler         = (*Response)(nil)
)

// responseValue turns a journaled http.* result into a *Response.
func responseValue(raw json.RawMessage) (starlark.Value, error) {
	x, err := builtins.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("http: bad journaled response: %w", err)
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("http: bad journaled response: got %T, want an object", x)
	}
	r := &Response{result: m, json: starlark.None}
	if n, ok := m["status"].(json.Number); ok {
		s, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("http: bad journaled status %q", n)
		}
		r.status = int(s)
	}
	hs, _ := m["headers"].(map[string]any)
	names := make([]string, 0, len(hs))
	for k := range hs {
		names = append(names, k)
	}
	sort.Strings(names)
	r.headers = starlark.NewDict(len(hs))
	for _, k := range names {
		v, _ := hs[k].(string)
		if err := r.headers.SetKey(starlark.String(k), starlark.String(v)); err != nil {
			return nil, err
		}
	}
	switch b := m["body_base64"].(type) {
	case string:
		data, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			return nil, fmt.Errorf("http: bad journaled body: %w", err)
		}
		r.body = string(data)
	default:
		r.body, _ = m["body"].(string)
	}
	if v, err := builtins.Decode([]byte(r.body)); err == nil {
		if r.json, err = builtins.FromJSON(v); err != nil {
			r.json = starlark.None
		}
	}
	return r, nil
}

// Status returns the HTTP status code.
func (r *Response) Status() int { return r.status }

// Body returns the response body.
func (r *Response) Body() string { return r.body }

// String implements starlark.Value.
func (r *Response) String() string { return fmt.Sprintf("<http.response %d>", r.status) }

// Type implements starlark.Value.
func (r *Response) Type() string { return "http.response" }

// Freeze implements starlark.Value.
func (r *Response) Freeze() {
	r.headers.Freeze()
	r.json.Freeze()
}

// Truth implements starlark.Value: a response is always true.
func (r *Response) Truth() starlark.Bool { return starlark.True }

// Hash implements starlark.Value: responses are not hashable.
func (r *Response) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: http.response") }

// Attr implements starlark.HasAttrs.
func (r *Response) Attr(name string) (starlark.Value, error) {
	switch name {
	case "status":
		return starlark.MakeInt(r.status), nil
	case "headers":
		return r.headers, nil
	case "body":
		return starlark.String(r.body), nil
	case "json":
		return r.json, nil
	}
	return nil, nil
}

// AttrNames implements starlark.HasAttrs.
func (r *Response) AttrNames() []string { return []string{"body", "headers", "json", "status"} }

// JSONValue implements builtins.JSONMarshaler: a response converts to the same
// object the step journaled, {"status", "headers", "body" or "body_base64"}.
func (r *Response) JSONValue() any { return r.result }

// MarshalJSON makes json.encode(response) give the canonical JSONValue.
func (r *Response) MarshalJSON() ([]byte, error) { return builtins.Canonical(r.result) }
