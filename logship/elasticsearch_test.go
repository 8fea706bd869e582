package logship

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func esConfig(urls ...string) Config {
	return Config{Elasticsearch: ElasticsearchConfig{Addresses: urls, BatchLines: 3, FlushInterval: 5 * time.Millisecond}}
}

func TestElasticsearchDailyIndices(t *testing.T) {
	es := newESStandIn(t).start("")
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	s := newShipper(t, esConfig(es.url()), Options{Now: func() time.Time { return now }})
	lines := []string{
		`{"level":"info","time":"2026-12-02T23:59:59.999Z","message":"ms"}`,
		`{"level":"info","time":"2026-12-03T01:30:00.123456789+02:00","message":"ns, a day ahead of UTC"}`,
		`{"level":"info","attrs":{"time":"1999-01-01T00:00:00Z"},"time":"2026-12-03T00:00:00Z","message":"attrs first"}`,
		`{"level":"info","message":"no time"}`,
	}
	for _, l := range lines {
		s.Write([]byte(l + "\n"))
	}
	eventually(t, "four lines shipped", func() bool { return s.Stats().Elasticsearch.Shipped == 4 })
	for index, want := range map[string][]string{
		"drover-logs-2026.12.02": lines[:2],
		"drover-logs-2026.12.03": lines[2:3],
		"drover-logs-2026.12.05": lines[3:],
	} {
		if got := es.index(index); !slices.Equal(got, want) {
			t.Errorf("index %s holds %q, want %q", index, got, want)
		}
	}
	if st := s.Stats().Elasticsearch; !st.Connected || st.Shipped != 4 || st.Failed+st.Dropped != 0 || st.Queued != 0 || st.LastError != "" {
		t.Errorf("stats %+v, want 4 shipped", st)
	}
}

func TestElasticsearchBatchesByCountAndTime(t *testing.T) {
	es := newESStandIn(t).start("")
	cfg := esConfig(es.url())
	cfg.Elasticsearch.FlushInterval = time.Hour // only full batches, and Close, send
	s := newShipper(t, cfg, Options{})
	for i := range 7 {
		fmt.Fprintf(s, `{"time":"2026-12-02T10:00:00Z","i":%d}`+"\n", i)
	}
	eventually(t, "two batches of 3", func() bool { return s.Stats().Elasticsearch.Shipped == 6 })
	if st := s.Stats().Elasticsearch; st.Queued != 1 {
		t.Fatalf("stats %+v, want the 7th line waiting for its batch", st)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := es.count(); n != 7 {
		t.Errorf("after Close, %d documents, want 7", n)
	}
}

func TestElasticsearchItemErrors(t *testing.T) {
	es := newESStandIn(t).start("")
	s := newShipper(t, esConfig(es.url()), Options{})
	for _, l := range []string{
		`{"time":"2026-12-02T10:00:00Z","i":0}`,
		`{"time":"2026-12-02T10:00:00Z","i":1,"reject":true}`,
		`{"time":"2026-12-02T10:00:00Z","i":2,"busy":true}`,
		`{"time":"2026-12-02T10:00:00Z","i":3}`,
		`not json`,
	} {
		s.Write([]byte(l + "\n"))
	}
	eventually(t, "every line settled", func() bool { st := s.Stats().Elasticsearch; return st.Queued == 0 })
	st := s.Stats().Elasticsearch
	if st.Shipped != 3 || st.Failed != 2 || st.Dropped != 0 {
		t.Errorf("stats %+v, want 3 shipped (one after a 429), 2 failed", st)
	}
	if !strings.Contains(st.LastError, "refused 1 of") || !strings.Contains(st.LastError, "400") {
		t.Errorf("LastError %q, want the refusal, its status and reason", st.LastError)
	}
}

func TestElasticsearchRetries5xx(t *testing.T) {
	es := newESStandIn(t)
	es.status = func(n int) int {
		if n <= 3 {
			return []int{0, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusTooManyRequests}[n]
		}
		return 0
	}
	es.start("")
	s := newShipper(t, esConfig(es.url()), Options{})
	for i := range 5 {
		fmt.Fprintf(s, `{"time":"2026-12-02T10:00:00Z","i":%d}`+"\n", i)
	}
	eventually(t, "every line shipped", func() bool { return s.Stats().Elasticsearch.Shipped == 5 })
	if n := es.count(); n != 5 {
		t.Errorf("%d documents, want 5", n)
	}
	st := s.Stats().Elasticsearch
	if st.Shipped != 5 || st.Failed != 0 || !st.Connected || !strings.Contains(st.LastError, "429") {
		t.Errorf("stats %+v, want 5 shipped after a 503, a 502 and a 429", st)
	}
}

func TestElasticsearchUnreachableThenUp(t *testing.T) {
	addr := freeAddr(t)
	s := newShipper(t, esConfig("http://"+addr), Options{})
	for i := range 10 {
		fmt.Fprintf(s, `{"time":"2026-12-02T10:00:00Z","i":%d}`+"\n", i)
	}
	eventually(t, "the connection refused", func() bool { return s.Stats().Elasticsearch.LastError != "" })
	if st := s.Stats().Elasticsearch; st.Connected || st.Queued != 10 || !strings.Contains(st.LastError, "refused") {
		t.Fatalf("stats %+v, want 10 queued and the connection refused", st)
	}
	es := newESStandIn(t).start(addr)
	eventually(t, "the lines shipped", func() bool { return s.Stats().Elasticsearch.Shipped == 10 })
	if n := len(es.index("drover-logs-2026.12.02")); n != 10 || !s.Stats().Elasticsearch.Connected {
		t.Errorf("%d documents in the day's index, want 10; stats %+v", n, s.Stats().Elasticsearch)
	}
}

func TestElasticsearchProductCheck(t *testing.T) {
	es := newESStandIn(t)
	es.notES = true
	es.start("")
	s := newShipper(t, esConfig(es.url()), Options{})
	s.Write([]byte(`{"i":0}` + "\n"))
	eventually(t, "an error", func() bool { return s.Stats().Elasticsearch.LastError != "" })
	if st := s.Stats().Elasticsearch; st.Shipped != 0 || st.Queued != 1 || !strings.Contains(st.LastError, "not Elasticsearch") {
		t.Errorf("stats %+v, want the line kept and the product check's error", st)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err == nil || !strings.Contains(err.Error(), "1 lines not shipped") {
		t.Errorf("Close: %v, want the line not shipped", err)
	}
}
