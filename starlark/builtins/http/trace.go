package http

import (
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// scope is the instrumentation scope of the requests' client spans.
const scope = "github.com/droverhq/drover/starlark/builtins/http"

// requestAttrs are the attributes of a request's client span, by the
// OpenTelemetry HTTP client conventions: its method, its URL without
// credentials (the user and password of the URL, signatures in the query)
// and with the node's secrets redacted, and its server.
func requestAttrs(method, rawURL string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(method)}
	u, err := url.Parse(rawURL)
	if err != nil {
		return attrs
	}
	u.User = nil
	u.RawQuery = redactQuery(u.RawQuery)
	attrs = append(attrs, semconv.URLFull(builtins.Redact(u.String())), semconv.ServerAddress(u.Hostname()))
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		port = map[string]int{"http": 80, "https": 443}[u.Scheme]
	}
	return append(attrs, semconv.ServerPort(port))
}

// signatures are the query parameters whose values url.full leaves out, as
// the conventions ask: they authenticate the request.
var signatures = []string{"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"}

// redactQuery replaces the values of signatures in a raw query with
// "REDACTED", leaving the rest as written.
func redactQuery(q string) string {
	if q == "" {
		return q
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		name, _, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		for _, s := range signatures {
			if name == s {
				parts[i] = p[:strings.IndexByte(p, '=')+1] + "REDACTED"
			}
		}
	}
	return strings.Join(parts, "&")
}

// responseStatus records a response's status on its span: a server error
// (5xx) fails the span. A 4xx leaves it unset: the step succeeds with the
// response, and the script decides what a 404 means.
func responseStatus(span trace.Span, status int) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= 500 {
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
		span.SetStatus(codes.Error, strconv.Itoa(status)+" "+nethttp.StatusText(status))
	}
}

// endSpan marks span failed with a step's error, and returns the error.
func endSpan(span trace.Span, serr *builtins.StepError) error {
	if span.IsRecording() {
		telemetry.Fail(span, serr.Code, builtins.Redact(serr.Message))
	}
	return serr
}
