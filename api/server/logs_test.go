package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/client"
)

// floodBackend's Logs delivers n lines at once, live, then ends.
type floodBackend struct {
	backend
	n int
}

func (b *floodBackend) Logs(ctx context.Context, q api.LogQuery, fn func(api.LogLine) bool) error {
	for i := range b.n {
		if !fn(api.LogLine{Line: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}) {
			return nil
		}
	}
	return nil
}

// TestLogsRateCapped: a client of GET /v1/logs gets no more lines a second
// than the node's cap, and is told how many it lost; the lines it gets are
// in order.
func TestLogsRateCapped(t *testing.T) {
	b := &floodBackend{n: 5000}
	s, err := New(b, Options{LogsRate: 100})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	var got, dropped, last int
	last = -1
	err = client.New(srv.URL).Logs(context.Background(), api.LogQuery{Attrs: map[string]string{"customer": "acme"}, Follow: true}, func(l api.LogLine) bool {
		if l.Dropped > 0 {
			dropped += l.Dropped
			return true
		}
		var v struct{ I int }
		json.Unmarshal(l.Line, &v)
		if v.I <= last {
			t.Errorf("line %d after %d", v.I, last)
		}
		last = v.I
		got++
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if got < 100 || got > 300 || dropped == 0 || got+dropped > 5000 {
		t.Fatalf("%d lines and %d dropped of 5000, at 100 lines/s", got, dropped)
	}
}

// TestLogsBadQuery: a query that selects nothing sensible is a 400 with
// what to write, before any stream starts.
func TestLogsBadQuery(t *testing.T) {
	_, srv := serve(t)
	for _, q := range []string{"", "attr=customer", "attr=customer=acme", "run=r1&level=loud", "run=r1&follow=maybe", "run=r1&since=-1h"} {
		resp, herr := srv.Client().Get(srv.URL + "/v1/logs?" + q)
		if herr != nil {
			t.Fatal(herr)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 || resp.Header.Get("Content-Type") == "text/event-stream" {
			t.Errorf("GET /v1/logs?%s: %d %s", q, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}
