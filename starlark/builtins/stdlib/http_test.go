package stdlib

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
)

// newServer starts a test HTTP server; /slow blocks until the client gives up.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		io.WriteString(w, `{"ok": true, "n": 3, "items": [1, 2.5, "x"], "big": 12345678901234567890}`)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(map[string]string{
			"method":       r.Method,
			"content_type": r.Header.Get("Content-Type"),
			"token":        r.Header.Get("X-Token"),
			"host":         r.Host,
			"body":         string(body),
		})
	})
	mux.HandleFunc("/binary", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte{0xff, 0xfe, 0x00})
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 1<<20)
		for i := 0; i <= MaxResponseBody>>20; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
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
			want: `{"body": "{\"a\":[true,null,1.5],\"b\":1}", "content_type": "application/json", "host": "` + strings.TrimPrefix(srv.URL, "http://") + `", "method": "POST", "token": "t1"}`,
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newFake(t)
			got := rt.got(t, tt.src, starlark.StringDict{"URL": starlark.String(srv.URL)})
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestHTTPJournal(t *testing.T) {
	srv := newServer(t)
	rt := newFake(t)
	globals, err := rt.run(t, `got = [http.get(URL + "/binary", headers={"X-B": "2", "X-A": "1"}), http.post(URL + "/echo", json={"z": 1, "a": 2}, timeout="2s")]`,
		starlark.StringDict{"URL": starlark.String(srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	calls := rt.stepCalls()
	if len(calls) != 2 {
		t.Fatalf("got %d step calls, want 2", len(calls))
	}
	wantArgs := []string{
		`{"headers":{"X-A":"1","X-B":"2"},"method":"GET","timeout":"30s","url":"` + srv.URL + `/binary"}`,
		`{"json":{"a":2,"z":1},"method":"POST","timeout":"2s","url":"` + srv.URL + `/echo"}`,
	}
	for i, c := range calls {
		if c.local {
			t.Errorf("%s is Local; http steps are placed", c.name)
		}
		if c.args != wantArgs[i] {
			t.Errorf("%s args\n got %s\nwant %s", c.name, c.args, wantArgs[i])
		}
	}
	resp := globals["got"].(*starlark.List).Index(0).(*Response)
	if resp.Body() != "\xff\xfe\x00" || resp.Status() != 200 {
		t.Errorf("binary response: status %d body %q, want 200 and the raw bytes", resp.Status(), resp.Body())
	}
	if !strings.Contains(calls[0].result, `"body_base64":"//4A"`) || strings.Contains(calls[0].result, `"body":`) {
		t.Errorf("binary body journaled as %s, want body_base64 only", calls[0].result)
	}
}

func TestHTTPDeadline(t *testing.T) {
	r := builtins.NewRegistry()
	Register(r)
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
			rt := newFake(t)
			_, err := rt.run(t, tt.src, starlark.StringDict{
				"URL":    starlark.String(srv.URL),
				"CLOSED": starlark.String(closed),
			})
			if err == nil {
				t.Fatalf("%s succeeded, want a %s error", tt.src, tt.wantCode)
			}
			if !errors.Is(err, &builtins.StepError{Code: tt.wantCode}) {
				t.Fatalf("error %v is not a %s StepError", err, tt.wantCode)
			}
			se := stepErr(t, err)
			if se.Retryable != tt.wantRetryable {
				t.Errorf("Retryable = %v, want %v", se.Retryable, tt.wantRetryable)
			}
			if !strings.HasPrefix(se.Message, tt.wantPrefix) || !strings.Contains(se.Message, tt.wantContains) {
				t.Errorf("message %q, want prefix %q containing %q", se.Message, tt.wantPrefix, tt.wantContains)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
			evalMsg(t, err)
		})
	}
}
