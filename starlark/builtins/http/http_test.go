package http_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/http"
	starjson "github.com/droverhq/drover/starlark/builtins/json"
	"go.starlark.net/starlark"
)

// newServer starts a test HTTP server; /slow blocks until the client gives up.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	mux := nethttp.NewServeMux()
	mux.HandleFunc("/json", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		io.WriteString(w, `{"ok": true, "n": 3, "items": [1, 2.5, "x"], "big": 12345678901234567890}`)
	})
	mux.HandleFunc("/fail", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		nethttp.Error(w, "boom", nethttp.StatusInternalServerError)
	})
	mux.HandleFunc("/missing", nethttp.NotFound)
	mux.HandleFunc("/echo", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		body, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(map[string]string{
			"method":       r.Method,
			"content_type": r.Header.Get("Content-Type"),
			"token":        r.Header.Get("X-Token"),
			"host":         r.Host,
			"key":          r.Header.Get("Idempotency-Key"),
			"body":         string(body),
		})
	})
	mux.HandleFunc("/binary", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Write([]byte{0xff, 0xfe, 0x00})
	})
	mux.HandleFunc("/big", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		chunk := make([]byte, 1<<20)
		for i := 0; i <= http.MaxResponseBody>>20; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	return srv
}

func TestHTTP(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name string
		src  string
		want string
	}{
		{
			name: "get json",
			src: `r = http.get(URL + "/json")
got = (r.status, r.json, r.headers["x-multi"], r.headers["content-type"], type(r))`,
			want: `(200, {"big": 12345678901234567890, "items": [1, 2.5, "x"], "n": 3, "ok": True}, "a, b", "application/json", "http.response")`,
		},
		{
			name: "500 is a value",
			src: `r = http.get(URL + "/fail")
got = (r.status, r.body, r.json, bool(r))`,
			want: `(500, "boom\n", None, True)`,
		},
		{
			name: "404 is a value",
			src:  `got = http.get(URL + "/missing", headers=None, timeout="5s").status + http.post(URL + "/missing", body=None, json=None).status`,
			want: `808`,
		},
		{
			name: "post json sets content type",
			src: `r = http.post(URL + "/echo", json={"b": 1, "a": [True, None, 1.5]}, headers={"X-Token": "t1"})
got = r.json`,
			want: `{"body": "{\"a\":[true,null,1.5],\"b\":1}", "content_type": "application/json", "host": "` + strings.TrimPrefix(srv.URL, "http://") + `", "key": "test/1", "method": "POST", "token": "t1"}`,
		},
		{
			name: "post body keeps given content type",
			src: `r = http.post(URL + "/echo", body="a=1&b=2", headers={"content-type": "application/x-www-form-urlencoded"})
got = (r.json["body"], r.json["content_type"])`,
			want: `("a=1&b=2", "application/x-www-form-urlencoded")`,
		},
		{
			name: "json with own content type",
			src: `r = http.post(URL + "/echo", json=[1], headers={"Content-Type": "application/vnd.x+json"})
got = r.json["content_type"]`,
			want: `"application/vnd.x+json"`,
		},
		{
			name: "request with lower-case method and bytes body",
			src: `r = http.request("put", URL + "/echo", body=b"raw", headers={"Host": "example.test"})
got = (r.json["method"], r.json["body"], r.json["host"])`,
			want: `("PUT", "raw", "example.test")`,
		},
		{
			name: "head",
			src: `r = http.request("HEAD", URL + "/json")
got = (r.status, r.body, r.json)`,
			want: `(200, "", None)`,
		},
		{
			name: "binary body",
			src: `r = http.get(URL + "/binary")
got = (len(r.body), r.json)`,
			want: `(3, None)`,
		},
		{
			name: "response converts to its journaled JSON",
			src: `r = http.get(URL + "/fail")
got = json.decode(json.encode(r))["status"], json.encode(r) == json.encode(json.decode(json.encode(r)))`,
			want: `(500, True)`,
		},
		{
			name: "response attributes",
			src:  `got = dir(http.get(URL + "/fail"))`,
			want: `["body", "headers", "json", "status"]`,
		},
	}
	r := builtinstest.NewRegistry(http.Register, starjson.Register)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			globals, err := builtinstest.NewRuntime().Run(r, tt.src, starlark.StringDict{"URL": starlark.String(srv.URL)})
			if err != nil {
				t.Fatalf("script failed: %v\n%s", err, tt.src)
			}
			if got := globals["got"].String(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestHTTPJournal(t *testing.T) {
	srv := newServer(t)
	rt := builtinstest.NewRuntime()
	r := builtinstest.NewRegistry(http.Register)
	globals, err := rt.Run(r, `got = [http.get(URL + "/binary", headers={"X-B": "2", "X-A": "1"}), http.post(URL + "/echo", json={"z": 1, "a": 2}, timeout="2s")]`,
		starlark.StringDict{"URL": starlark.String(srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	calls := rt.Calls()
	if len(calls) != 2 {
		t.Fatalf("got %d step calls, want 2", len(calls))
	}
	wantArgs := []string{
		`{"headers":{"X-A":"1","X-B":"2"},"method":"GET","timeout":"30s","url":"` + srv.URL + `/binary"}`,
		`{"json":{"a":2,"z":1},"method":"POST","timeout":"2s","url":"` + srv.URL + `/echo"}`,
	}
	for i, c := range calls {
		if c.Local {
			t.Errorf("%s is Local; http steps are placed", c.Name)
		}
		if c.Args != wantArgs[i] {
			t.Errorf("%s args\n got %s\nwant %s", c.Name, c.Args, wantArgs[i])
		}
	}
	resp := globals["got"].(*starlark.List).Index(0).(*http.Response)
	if resp.Body() != "\xff\xfe\x00" || resp.Status() != 200 {
		t.Errorf("binary response: status %d body %q, want 200 and the raw bytes", resp.Status(), resp.Body())
	}
	if !strings.Contains(calls[0].Result, `"body_base64":"//4A"`) || strings.Contains(calls[0].Result, `"body":`) {
		t.Errorf("binary body journaled as %s, want body_base64 only", calls[0].Result)
	}
}

func TestHTTPDeadline(t *testing.T) {
	r := builtinstest.NewRegistry(http.Register)
	for _, name := range []string{"http.get", "http.post", "http.request"} {
		s, err := r.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if s.Deadline == nil {
			t.Fatalf("%s has no Deadline", name)
		}
		if got := s.Deadline(json.RawMessage(`{"method":"GET","timeout":"1m30s","url":"http://x"}`)); got.String() != "1m30s" {
			t.Errorf("%s Deadline = %s, want 1m30s", name, got)
		}
		if got := s.Deadline(json.RawMessage(`{}`)); got != 0 {
			t.Errorf("%s Deadline without timeout = %s, want 0 (engine default)", name, got)
		}
	}
}

func TestHTTPFailures(t *testing.T) {
	srv := newServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	r := builtinstest.NewRegistry(http.Register)

	tests := []struct {
		name          string
		src           string
		wantCode      string
		wantRetryable bool
		wantPrefix    string
		wantContains  string
	}{
		{
			name:          "connection refused",
			src:           `http.get(CLOSED + "/x")`,
			wantCode:      builtins.CodeTransport,
			wantRetryable: true,
			wantPrefix:    "http.get " + closed + "/x: ",
			wantContains:  "connection refused",
		},
		{
			name:          "timeout",
			src:           `http.post(URL + "/slow", json={}, timeout="100ms")`,
			wantCode:      builtins.CodeTimeout,
			wantRetryable: true,
			wantPrefix:    "http.post " + srv.URL + "/slow: ",
			wantContains:  "no response within 100ms",
		},
		{
			name:         "body over the limit",
			src:          `http.get(URL + "/big")`,
			wantCode:     builtins.CodePayloadTooLarge,
			wantPrefix:   "http.get " + srv.URL + "/big: ",
			wantContains: "larger than the limit of 64 MiB",
		},
		{
			name:          "credentials are not shown",
			src:           `http.get("http://user:secret@" + CLOSED[len("http://"):] + "/x")`,
			wantCode:      builtins.CodeTransport,
			wantRetryable: true,
			wantPrefix:    "http.get http://user:xxxxx@" + strings.TrimPrefix(closed, "http://") + "/x: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := builtinstest.NewRuntime().Run(r, tt.src, starlark.StringDict{
				"URL":    starlark.String(srv.URL),
				"CLOSED": starlark.String(closed),
			})
			if err == nil {
				t.Fatalf("%s succeeded, want a %s error", tt.src, tt.wantCode)
			}
			if !errors.Is(err, &builtins.StepError{Code: tt.wantCode}) {
				t.Fatalf("error %v is not a %s StepError", err, tt.wantCode)
			}
			var se *builtins.StepError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) carries no *builtins.StepError", err, err)
			}
			if se.Retryable != tt.wantRetryable {
				t.Errorf("Retryable = %v, want %v", se.Retryable, tt.wantRetryable)
			}
			if !strings.HasPrefix(se.Message, tt.wantPrefix) || !strings.Contains(se.Message, tt.wantContains) {
				t.Errorf("message %q, want prefix %q containing %q", se.Message, tt.wantPrefix, tt.wantContains)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
			if _, pos, ok := builtinstest.SplitError(err); !ok || pos.Filename() != builtinstest.Snippet {
				t.Errorf("error %v is not a script error raised in %s", err, builtinstest.Snippet)
			}
		})
	}
}

// TestBadArguments checks that every bad call fails the script, before any step
// runs, with a message that names the builtin and the argument.
func TestBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{"http.get no url", `http.get()`, `http.get: missing argument for url`},
		{"http.get url type", `http.get(1)`, `http.get: for parameter url: got int, want string`},
		{"http.get too many", `http.get("http://x", None, "1s", 4)`, `http.get: got 4 arguments, want at most 3`},
		{"http.get unknown kwarg", `http.get("http://x", bogus="1s")`, `http.get: unexpected keyword argument "bogus"`},
		{"http.get timeout type", `http.get("http://x", timeout=5)`, `http.get: for parameter timeout: got int, want string`},
		{"http.get timeout positional type", `http.get("http://x", None, 5)`, `http.get: for parameter timeout: got int, want string`},
		{"http.get bad duration", `http.get("http://x", timeout="2x")`, `http.get: for parameter timeout: "2x" is not a duration (want e.g. "250ms", "2s", "10m")`},
		{"http.get negative duration", `http.get("http://x", timeout="-1s")`, `http.get: for parameter timeout: "-1s" is negative (want a duration ≥ 0, e.g. "2s")`},
		{"http.get zero timeout", `http.get("http://x", timeout="0s")`, `http.get: for parameter timeout: want a duration > 0, e.g. "10s"`},
		{"http.get ftp", `http.get("ftp://example.com/f")`, `http.get: for parameter url: "ftp://example.com/f" has scheme "ftp" (want http or https)`},
		{"http.get no scheme", `http.get("example.com/x")`, `http.get: for parameter url: "example.com/x" has no scheme (want e.g. "https://example.com/path")`},
		{"http.get no host", `http.get("http:///x")`, `http.get: for parameter url: "http:///x" has no host`},
		{"http.get unparsable", `http.get("http://[::1")`, `http.get: for parameter url: "http://[::1" is not a URL: missing ']' in host`},
		{"http.get headers type", `http.get("http://x", headers=[1])`, `http.get: for parameter headers: got list, want dict`},
		{"http.get header name", `http.get("http://x", headers={"bad name": "v"})`, `http.get: for parameter headers: "bad name" is not a valid header name`},
		{"http.get header value type", `http.get("http://x", headers={"X-N": 1})`, `http.get: for parameter headers: header "X-N": got int, want string`},
		{"http.get header newline", `http.get("http://x", headers={"X-N": "a\r\nX-Evil: 1"})`, `http.get: for parameter headers: header "X-N": value contains a line break or NUL`},
		{"http.get header twice", `http.get("http://x", headers={"Accept": "a", "accept": "b"})`, `http.get: for parameter headers: header "accept" given twice (as "Accept" and "accept"; names ignore case)`},
		{"http.post body and json", `http.post("http://x", body="a", json={})`, `http.post: body and json are mutually exclusive; pass one of them`},
		{"http.post body type", `http.post("http://x", body=1)`, `http.post: for parameter body: got int, want string or bytes`},
		{"http.post json not json", `http.post("http://x", json={"f": len})`, `http.post: for parameter json: builtins: value is not JSON: value["f"] is a builtin_function_or_method, which has no JSON form`},
		{"http.request no method", `http.request()`, `http.request: missing argument for method`},
		{"http.request bad method", `http.request("FETCH", "http://x")`, `http.request: for parameter method: "FETCH" is not a supported method (want one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)`},
		{"http.request method type", `http.request(1, "http://x")`, `http.request: for parameter method: got int, want string`},
	}
	r := builtinstest.NewRegistry(http.Register)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { builtinstest.CheckBadCall(t, r, tt.src, tt.wantErr) })
	}
}
