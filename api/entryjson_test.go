package api

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
)

// reflectJSON is what EncodeJSON wrote before entries encoded themselves.
func reflectJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestEntryJSONMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "3.2.1", `quote " back \ slash`, "tab\tnl\ncr\rbs\bff\f\x00\x1f", "<html>&amp;", "é日本\u2028\u2029", "bad \xff utf8", "n1"}
	values := []json.RawMessage{nil, json.RawMessage(`null`), json.RawMessage(`{"a":[1,2.5,"x<y"]}`), json.RawMessage(`"s"`)}
	times := []time.Time{{}, time.Date(2026, 12, 1, 17, 6, 50, 123456789, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	for i := 0; i < 2000; i++ {
		call := CallEntry{Step: pick(strs), Builtin: pick(strs), Args: values[rng.IntN(len(values))], Pos: pick(strs),
			Node: pick(strs), Reason: pick(strs), Time: times[rng.IntN(len(times))]}
		res := ResultEntry{Step: pick(strs), Value: values[rng.IntN(len(values))], Node: pick(strs), Attempts: rng.IntN(5),
			Start: times[rng.IntN(len(times))], Duration: time.Duration(rng.Int64N(1e12)), SpanID: pick(strs)}
		if rng.IntN(2) == 0 {
			res.Error = &builtins.StepError{Code: pick(strs), Message: pick(strs), Retryable: rng.IntN(2) == 0}
		}
		if rng.IntN(2) == 0 {
			res.Call = &call
		}
		for _, v := range []any{call, res} {
			got, err := EncodeJSON(v)
			if err != nil {
				t.Fatal(err)
			}
			if want := reflectJSON(t, v); !bytes.Equal(got, want) {
				t.Fatalf("EncodeJSON(%#v)\n got %s\nwant %s", v, got, want)
			}
		}
	}
	// A time encoding/json refuses is still refused.
	if _, err := EncodeJSON(CallEntry{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Fatal("year 10000 encoded")
	}
}

func BenchmarkEncodeResultEntry(b *testing.B) {
	now := time.Now().UTC()
	res := ResultEntry{Step: "12", Value: json.RawMessage(`{"ok":true}`), Node: "n1", Attempts: 1, Start: now, Duration: 1234, SpanID: "0123456789abcdef",
		Call: &CallEntry{Step: "12", Builtin: "http.get", Args: json.RawMessage(`{"url":"http://x"}`), Pos: "t.star:3:5", Node: "n1", Reason: "co-located", Time: now}}
	b.Run("AppendJSON", func(b *testing.B) {
		for b.Loop() {
			EncodeJSON(res)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.Encode(res)
		}
	})
}

// TestAppendJSONAppends: AppendJSON writes after what buf holds, by hand or
// through encoding/json, the bytes EncodeJSON returns.
func TestAppendJSONAppends(t *testing.T) {
	for _, v := range []any{
		ResultEntry{Step: "1", Value: json.RawMessage(`"<a>"`), Node: "n1", Start: time.Unix(1, 2).UTC()}, // by hand
		TagEntry{Attrs: map[string]string{"customer": "a&b"}},                                             // encoding/json
	} {
		want, err := EncodeJSON(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendJSON([]byte("prefix:"), v)
		if err != nil || string(got) != "prefix:"+string(want) {
			t.Errorf("%T: %s, %v; want prefix:%s", v, got, err, want)
		}
	}
}
