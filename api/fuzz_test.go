package api

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
)

// FuzzEntryJSON checks the journal's reflection-free encoding of a step's
// call and result entries against encoding/json on any field values: the
// same bytes, or both refuse (a time past year 9999).
func FuzzEntryJSON(f *testing.F) {
	f.Add("3.2.1", "http.get", `{"url":"https://x/?a=1&b=<2>"}`, "a.star:3:5", "n1", "drover: n1 least loaded", "timeout", "quote \" back \\ \x00", 2, int64(1234567), int64(1796205633), int64(123456789), true)
	f.Add("", "", "", "", "", "", "", "bad \xff utf8 \u2028", 0, int64(0), int64(-62135596800), int64(0), false)
	f.Add("1", "x", "null", "é日本", "\t", "\n", "<html>&amp;", "", -1, int64(-1), int64(253402300800), int64(0), false)
	f.Fuzz(func(t *testing.T, step, builtin, value, pos, node, reason, code, message string, attempts int, dur, sec, nsec int64, retryable bool) {
		var raw json.RawMessage
		if x, err := builtins.Decode([]byte(value)); err == nil {
			if c, err := builtins.Canonical(x); err == nil {
				raw = c // entries hold compact JSON, as builtins.Canonical writes it
			}
		}
		at := time.Unix(sec, nsec%1e9).UTC()
		call := CallEntry{Step: step, Builtin: builtin, Args: raw, Pos: pos, Node: node, Reason: reason, Time: at}
		res := ResultEntry{Step: step, Value: raw, Node: node, Attempts: attempts, Start: at, Duration: time.Duration(dur), SpanID: reason}
		if code != "" || message != "" {
			res.Error = &builtins.StepError{Code: code, Message: message, Retryable: retryable}
		}
		if retryable {
			res.Call = &call
		}
		for _, v := range []any{call, res} {
			got, err := EncodeJSON(v)
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			wantErr := enc.Encode(v)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("EncodeJSON(%#v): %v; encoding/json: %v", v, err, wantErr)
			}
			if want := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); err == nil && !bytes.Equal(got, want) {
				t.Fatalf("EncodeJSON(%#v)\n got %s\nwant %s", v, got, want)
			}
		}
	})
}

// FuzzParseListQuery: any query of GET /v1/runs is refused or read into a
// filter that Query writes back as a query read into the same filter.
func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{
		"", "status=failed&script=checkout&attr=customer%3Dacme&attr=tier%3Dgold&since=2h&limit=100",
		"version=2&script=x&node=n1&before=01ARZ3NDEKTSV4RRFFQ69G5FAV", "attr=a%3Db%3Dc", "attr=%3Dv", "attr=novalue",
		"since=-1h", "limit=0", "limit=99999999999999999999", "version=1", "status=lost", "before=01ARZ3NDEKTSV4RRFFQ69G5FAI",
		"since=1h1m1s1ms1us1ns", "limit=1&limit=2", "attr=a%3D1&attr=a%3D2", "%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) { roundTrip(t, query, ParseListQuery, ListFilter.Query) })
}

// FuzzParseLogQuery: the same for GET /v1/logs, whose attribute predicates
// (attr=customer=acme) select one customer's lines.
func FuzzParseLogQuery(f *testing.F) {
	for _, s := range []string{
		"attr=customer%3Dacme&follow=true", "run=01ARZ3NDEKTSV4RRFFQ69G5FAV", "script=checkout&level=warn&since=1h&node=n2",
		"attr=bad%20name%3Dv&follow=1", "attr=customer%3D&since=30m", "level=trace&run=x", "follow=maybe&run=x", "since=0s&script=s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) { roundTrip(t, query, ParseLogQuery, LogQuery.Query) })
}

// roundTrip checks that query is refused by parse, or read into a value
// that write turns into a query parse reads into the same value.
func roundTrip[F any](t *testing.T, query string, parse func(url.Values) (F, error), write func(F) url.Values) {
	q, err := url.ParseQuery(query)
	if err != nil {
		return
	}
	got, err := parse(q)
	if err != nil {
		return
	}
	back, err := parse(write(got))
	if err != nil {
		t.Fatalf("%q read as %+v, whose query %q is refused: %v", query, got, write(got).Encode(), err)
	}
	if !reflect.DeepEqual(back, got) {
		t.Fatalf("%q read as %+v; its query %q reads as %+v", query, got, write(got).Encode(), back)
	}
}
