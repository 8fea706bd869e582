// Package http implements the http.* step builtins of Script API v0:
//
//	http.get(url, headers=None, timeout="30s") -> http.response
//	http.post(url, body=None, json=None, headers=None, timeout="30s") -> http.response
//	http.request(method, url, body=None, json=None, headers=None, timeout="30s") -> http.response
//
// Each call is one placed step: it may execute on any node, through that
// node's HTTP client, and sends the step's idempotency key as the
// Idempotency-Key header. The response (a *Response) has status, headers,
// body and json; an HTTP error status is a normal response, while a failed
// round trip fails the step (retryable unless it was a certificate failure).
// Each request is an OpenTelemetry client span, a child of the step's, whose
// W3C trace context it sends as the traceparent and tracestate headers
// (unless the script sends a traceparent itself).
//
// The package is named after the script module it implements; code that also
// needs the standard library's net/http imports it under another name, as
// this package does (nethttp).
//
// Its init registers the builtins into builtins.Default; Register adds them to
// another registry.
package http

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
	nethttp "net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

const (
	// DefaultTimeout bounds one attempt of http.* when the call gives no timeout=.
	DefaultTimeout = 30 * time.Second
	// MaxResponseBody is the most http.* reads of a response body (64 MiB); a
	// longer body fails the step with builtins.CodePayloadTooLarge.
	MaxResponseBody = 64 << 20
)

// methods are the methods http.request accepts.
var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

func init() { Register(builtins.Default) }

// Register adds http.get, http.post and http.request to r. Like
// Registry.MustRegister it panics if one of the names is taken.
func Register(r *builtins.Registry) {
	r.MustRegister(newStep("http.get", nethttp.MethodGet, false,
		"GET a URL; returns a response with status, headers, body and json"))
	r.MustRegister(newStep("http.post", nethttp.MethodPost, true,
		"POST a body or a JSON value to a URL; returns a response"))
	r.MustRegister(newStep("http.request", "", true,
		"send an HTTP request with any method; returns a response"))
}

// newStep builds one of the http.* steps. An empty method means the script
// passes it as the first argument; withBody adds the body= and json= parameters.
func newStep(name, method string, withBody bool, doc string) *builtins.Step {
	return &builtins.Step{
		Name: name,
		Doc:  doc,
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			return parseArgs(b.Name(), method, withBody, args, kwargs)
		},
		Exec: func(ctx context.Context, env builtins.Env, raw json.RawMessage) (any, error) {
			return exec(ctx, env, name, raw)
		},
		Value:    responseValue,
		Deadline: deadline,
		Target:   target,
	}
}

// target is an http.* call's breaker target: its URL's host.
func target(_ builtins.Env, raw json.RawMessage) string {
	var c call
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		return ""
	}
	return "http " + u.Host
}

// call is the journaled form of an http.* call's arguments.
type call struct {
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	Body       *string           `json:"body"`        // a UTF-8 body
	BodyBase64 *string           `json:"body_base64"` // any other body
	JSON       json.RawMessage   `json:"json"`        // canonical JSON body
	Timeout    string            `json:"timeout"`
}

func parseArgs(fn, method string, withBody bool, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	var (
		rawURL  string
		headers headersArg
		body    bodyArg
		jsonArg starlark.Value = starlark.None
		timeout                = builtins.Duration(DefaultTimeout)
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
	if !isMethod(method) {
		return nil, &builtins.ArgError{Func: fn, Param: "method", Err: fmt.Errorf("%s is not a supported method (want one of %s)",
			starlark.String(method).String(), strings.Join(methods, ", "))}
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

func isMethod(m string) bool {
	for _, x := range methods {
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

// Unpack implements starlark.Unpacker.
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

// Unpack implements starlark.Unpacker.
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

// deadline reads the timeout= of a journaled call, for the engine.
func deadline(raw json.RawMessage) time.Duration {
	var c call
	if json.Unmarshal(raw, &c) != nil {
		return 0
	}
	d, err := time.ParseDuration(c.Timeout)
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

func exec(ctx context.Context, env builtins.Env, name string, raw json.RawMessage) (any, error) {
	var c call
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "%s: bad arguments: %v", name, err)
	}
	timeout, err := time.ParseDuration(c.Timeout)
	if err != nil || timeout <= 0 {
		timeout = DefaultTimeout
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
	ctx, span := telemetry.StartClient(ctx, scope, func() (string, []attribute.KeyValue) { return c.Method, requestAttrs(c.Method, c.URL) })
	defer span.End()
	req, err := nethttp.NewRequestWithContext(ctx, c.Method, c.URL, body)
	if err != nil {
		return nil, endSpan(span, builtins.Errorf(builtins.CodeBadArgs, "%s: %v", what, err))
	}
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("traceparent") == "" { // unless the script sends its own
		telemetry.Propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	if key := builtins.StepFrom(ctx).Key; key != "" && req.Header.Get("Idempotency-Key") == "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if len(c.JSON) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}

	client := env.HTTPClient()
	if client == nil {
		client = nethttp.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, endSpan(span, roundTripError(ctx, what, timeout, err))
	}
	defer resp.Body.Close()
	responseStatus(span, resp.StatusCode)
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody+1))
	if err != nil {
		return nil, endSpan(span, roundTripError(ctx, what, timeout, err))
	}
	if len(data) > MaxResponseBody {
		return nil, endSpan(span, builtins.Errorf(builtins.CodePayloadTooLarge,
			"%s: response body is larger than the limit of %d MiB", what, MaxResponseBody>>20))
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

// roundTripError classifies a failed round trip: cancelled (final), timed out or a
// transport failure (retryable), or a TLS certificate failure (final: another
// attempt would see the same certificate).
func roundTripError(ctx context.Context, what string, timeout time.Duration, err error) *builtins.StepError {
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
