package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

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

// tailBackend's Logs waits for release, then places a tail and says so.
type tailBackend struct {
	backend
	entered chan struct{}
	release chan struct{}
}

func (b *tailBackend) Logs(ctx context.Context, q api.LogQuery, fn func(api.LogLine) bool) error {
	close(b.entered)
	<-b.release            // placing the tail takes this long
	if fn(api.LogLine{}) { // api.LogLine.Ready
		<-ctx.Done()
	}
	return nil
}

// TestLogsAnswerOnceTheTailIsPlaced: a live tail's answer begins only once
// the backend has placed its tail, so a client that sees the stream open
// misses no line written after.
func TestLogsAnswerOnceTheTailIsPlaced(t *testing.T) {
	b := &tailBackend{entered: make(chan struct{}), release: make(chan struct{})}
	s, err := New(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	release := func() { once.Do(func() { close(b.release) }) }
	defer release() // before the server closes, on failure too
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/logs?attr=customer=acme&follow=true", nil)
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(answered)
			return
		}
		answered <- resp
	}()
	<-b.entered
	select { // an answer, were it sent before the tail, comes at once
	case <-answered:
		t.Fatal("answered before the tail was placed")
	case <-time.After(200 * time.Millisecond):
	}
	release()
	resp := <-answered
	if resp == nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Bytes at once, no line yet: Firefox opens an EventSource only then.
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || first != ": open\n" {
		t.Fatalf("first line %q %v, want a comment at once", first, err)
	}
}
