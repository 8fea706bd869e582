package stdlib

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
)

const (
	// DefaultHTTPTimeout bounds one attempt of http.* when the call gives no timeout=.
	DefaultHTTPTimeout = 30 * time.Second
	// MaxResponseBody is the most http.* reads of a response body (64 MiB); a
	// longer body fails the step with builtins.CodePayloadTooLarge.
	MaxResponseBody = 64 << 20
)

// httpMethods are the methods http.request accepts.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

func registerHTTP(r *builtins.Registry) {
	r.MustRegister(httpStep("http.get", http.MethodGet, false,
		"GET a URL; returns a response with status, headers, body and json"))
	r.MustRegister(httpStep("http.post", http.MethodPost, true,
		"POST a body or a JSON value to a URL; returns a response"))
	r.MustRegister(httpStep("http.request", "", true,
		"send an HTTP request with any method; returns a response"))
}

// httpStep builds one of the http.* steps. An empty method means the script
// passes it as the first argument; withBody adds the body= and json= parameters.
func httpStep(name, method string, withBody bool, doc string) *builtins.Step {
	return &builtins.Step{
		Name: name,
		Doc:  doc,
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			return httpArgs(b.Name(), method, withBody, args, kwargs)
		},
		Exec: func(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
			return httpExec(ctx, env, name, raw)
		},
		Value:    responseValue,
		Deadline: httpDeadline,
	}
}

// httpCall is the journaled form of an http.* call's arguments.
type httpCall struct {
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	Body       *string           `json:"body"`        // a UTF-8 body
	BodyBase64 *string           `json:"body_base64"` // any other body
	JSON       json.RawMessage   `json:"json"`        // canonical JSON body
	Timeout    string            `json:"timeout"`
}

func httpArgs(fn, method string, withBody bool, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	var (
		rawURL  string
		headers headersArg
		body    bodyArg
		jsonArg starlark.Value = starlark.None
		timeout                = builtins.Duration(DefaultHTTPTimeout)
		pairs   []any
	)
	if method == "" {
		pairs = append(pairs, "method", &method)
	}
	pairs = append(pairs, "url", &rawURL)
	if withBody {
		pairs = append(pairs, "body??", &body, "json?", &jsonArg)
	}
	pairs = append(pairs, "headers??", &headers, "timeout?", &timeout)
	if err := builtins.UnpackArgs(fn, args, kwargs, pairs...); err != nil {
		return nil, err
	}

	method = strings.ToUpper(method)
	if !isHTTPMethod(method) {
		return nil, &builtins.ArgError{Func: fn, Param: "method", Err: fmt.Errorf("%s is not a supported method (want one of %s)",
			starlark.String(method).String(), strings.Join(httpMethods, ", "))}
	}
	if err := checkURL(rawURL); err != nil {
		return nil, &builtins.ArgError{Func: fn, Param: "url", Err: err}
	}
	if timeout <= 0 {
		return nil, &builtins.ArgError{Func: fn, Param: "timeout", Err: errors.New(`want a duration > 0, e.g. "10s"`)}
	}

	call := map[string]any{
		"method":  method,
		"url":     rawURL,
		"timeout": timeout.String(),
	}
	if len(headers) > 0 {
		h := make(map[string]any, len(headers))
		for k, v := range headers {
			h[k] = v
		}
		call["headers"] = h
	}
	if body.set {
		if utf8.ValidString(body.s) {
			call["body"] = body.s
		} else {
			call["body_base64"] = base64.StdEncoding.EncodeToString([]byte(body.s))
		}
	}
	if jsonArg != starlark.None {
		if body.set {
			return nil, fmt.Errorf("%s: body and json are mutually exclusive; pass one of them", fn)
		}
		v, err := builtins.ToJSON(jsonArg)
		if err != nil {
			return nil, &builtins.ArgError{Func: fn, Param: "json", Err: err}
		}
		call["json"] = v
	}
	return call, nil
}

func isHTTPMethod(m string) bool {
	for _, x := range httpMethods {
		if m == x {
			return true
		}
	}
	return false
}

// checkURL accepts absolute http and https URLs with a host.
func checkURL(s string) error {
	q := starlark.String(s).String()
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s is not a URL: %v", q, err)
	}
	switch {
	case u.Scheme == "":
		return fmt.Errorf(`%s has no scheme (want e.g. "https://example.com/path")`, q)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s has scheme %q (want http or https)", q, u.Scheme)
	case u.Host == "":
		return fmt.Errorf("%s has no host", q)
	}
	return nil
}

// headersArg unpacks headers=: a dict of header names to string values.
type headersArg map[string]string

func (h *headersArg) Unpack(v starlark.Value) error {
	d, ok := v.(starlark.IterableMapping)
	if !ok {
		return fmt.Errorf("got %s, want dict", v.Type())
	}
	out := headersArg{}
	seen := map[string]string{}
	for _, kv := range d.Items() {
		k, ok := kv[0].(starlark.String)
		if !ok {
			return fmt.Errorf("got a %s key, want string header names", kv[0].Type())
		}
		name := string(k)
		if !isToken(name) {
			return fmt.Errorf("%s is not a valid header name", k.String())
		}
		val, ok := kv[1].(starlark.String)
		if !ok {
			return fmt.Errorf("header %s: got %s, want string", k.String(), kv[1].Type())
		}
		if strings.ContainsAny(string(val), "\r\n\x00") {
			return fmt.Errorf("header %s: value contains a line break or NUL", k.String())
		}
		lower := strings.ToLower(name)
		if prev, dup := seen[lower]; dup {
			return fmt.Errorf("header %s given twice (as %q and %q; names ignore case)", k.String(), prev, name)
		}
		seen[lower] = name
		out[name] = string(val)
	}
	*h = out
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// bodyArg unpacks body=: a string or bytes.
type bodyArg struct {
	s   string
	set bool
}

func (b *bodyArg) Unpack(v starlark.Value) error {
	switch x := v.(type) {
	case starlark.String:
		b.s = string(x)
	case starlark.Bytes:
		b.s = string(x)
	default:
		return fmt.Errorf("got %s, want string or bytes", v.Type())
	}
	b.set = true
	return nil
}

// httpDeadline reads the timeout= of a journaled call, for the engine.
func httpDeadline(raw json.RawMessage) time.Duration {
	var c httpCall
	if json.Unmarshal(raw, &c) != nil {
		return 0
	}
	d, err := time.ParseDuration(c.Timeout)
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

func httpExec(ctx context.Context, env builtins.Env, name string, raw json.RawMessage) (any, error) {
	var c httpCall
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "%s: bad arguments: %v", name, err)
	}
	timeout, err := time.ParseDuration(c.Timeout)
	if err != nil || timeout <= 0 {
		timeout = DefaultHTTPTimeout
	}
	target := c.URL
	if u, err := url.Parse(c.URL); err == nil {
		target = u.Redacted()
	}
	what := name + " " + target

	var body io.Reader
	switch {
	case c.Body != nil:
		body = strings.NewReader(*c.Body)
	case c.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*c.BodyBase64)
		if err != nil {
			return nil, builtins.Errorf(builtins.CodeBadArgs, "%s: bad body_base64: %v", what, err)
		}
		body = bytes.NewReader(b)
	case len(c.JSON) > 0:
		body = bytes.NewReader(c.JSON)
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, body)
	if err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "%s: %v", what, err)
	}
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if key := builtins.StepFrom(ctx).Key; key != "" && req.Header.Get("Idempotency-Key") == "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if len(c.JSON) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}

	client := env.HTTPClient()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, httpError(ctx, what, timeout, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody+1))
	if err != nil {
		return nil, httpError(ctx, what, timeout, err)
	}
	if len(data) > MaxResponseBody {
		return nil, builtins.Errorf(builtins.CodePayloadTooLarge,
			"%s: response body is larger than the limit of %d MiB", what, MaxResponseBody>>20)
	}

	headers := make(map[string]any, len(resp.Header))
	for k, vs := range resp.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ", ")
	}
	result := map[string]any{"status": resp.StatusCode, "headers": headers}
	if utf8.Valid(data) {
		result["body"] = string(data)
	} else {
		result["body_base64"] = base64.StdEncoding.EncodeToString(data)
	}
	return result, nil
}

// httpError classifies a failed round trip: cancelled (final), timed out or a
// transport failure (retryable), or a TLS certificate failure (final: another
// attempt would see the same certificate).
func httpError(ctx context.Context, what string, timeout time.Duration, err error) *builtins.StepError {
	if errors.Is(ctx.Err(), context.Canceled) {
		return builtins.Errorf(builtins.CodeCancelled, "%s: cancelled", what)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return builtins.Retryable(builtins.CodeTimeout, "%s: no response within %s", what, timeout)
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	var (
		verr  *tls.CertificateVerificationError
		uaerr x509.UnknownAuthorityError
		herr  x509.HostnameError
		cerr  x509.CertificateInvalidError
	)
	if errors.As(err, &verr) || errors.As(err, &uaerr) || errors.As(err, &herr) || errors.As(err, &cerr) {
		return builtins.Errorf(builtins.CodeTransport, "%s: %v", what, cause)
	}
	return builtins.Retryable(builtins.CodeTransport, "%s: %v", what, cause)
}

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
