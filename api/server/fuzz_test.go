package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/droverhq/drover/api"
)

// FuzzRequestBodies: any body sent to start a run (POST /v1/runs) or to
// trigger a deployed script (POST /v1/run/NAME) is answered with a run or
// with a 4xx and the API's JSON error (code and message), never a 5xx or a
// panic; and a refused body starts nothing.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		`{"script":{"name":"greet"}}`, `{"script":{"name":"x","main":"a.star","files":{"a.star":"def main(input):\n    return 1\n"}},"input":{"a":1},"attrs":{"customer":"acme"}}`,
		`{}`, ``, `null`, `[`, `{"script":{"name":"../etc"}}`, `{"input":"\ud800"}`, `{"attrs":{"bad name":"v"}}`, `{"script":{"files":{"":""}}}`,
		`{"a":1}`, `"str"`, `{"who":"world"}`, `{"script":{"name":"greet"},"input":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	b := &backend{}
	s, err := New(b, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string, trigger bool) {
		path := "/v1/runs"
		if trigger {
			path = "/v1/run/greet?async=1"
		}
		before := b.starts.Load()
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		if w.Code < 400 {
			return
		}
		var eb api.ErrorBody
		if w.Code >= 500 || json.Unmarshal(w.Body.Bytes(), &eb) != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body.Bytes())
		}
		if b.starts.Load() != before {
			t.Fatalf("POST %s %q: refused (%d %s) yet a run was started", path, body, w.Code, eb.Error.Message)
		}
	})
}
