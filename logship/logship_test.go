package logship

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/starlark/builtins"
)

func TestValidate(t *testing.T) {
	es := func(c ElasticsearchConfig) Config {
		if c.Addresses == nil {
			c.Addresses = []string{"http://127.0.0.1:9200"}
		}
		return Config{Elasticsearch: c}
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // the setting the error names; "" for none
	}{
		{name: "empty", cfg: Config{}},
		{name: "both", cfg: Config{Logstash: LogstashConfig{Address: "127.0.0.1:5000"}, Elasticsearch: ElasticsearchConfig{Addresses: []string{"https://es:9200"}, Index: "app-logs", Username: "elastic", Password: "pw12345"}, Buffer: 10, MaxLine: 2048, Level: "info"}},
		{name: "logstash without port", cfg: Config{Logstash: LogstashConfig{Address: "logstash"}}, wantErr: "logs.logstash.address"},
		{name: "address not a URL", cfg: es(ElasticsearchConfig{Addresses: []string{"127.0.0.1:9200"}}), wantErr: "logs.elasticsearch.addresses[0]"},
		{name: "address without host", cfg: es(ElasticsearchConfig{Addresses: []string{"http://"}}), wantErr: "logs.elasticsearch.addresses[0]"},
		{name: "settings without addresses", cfg: Config{Elasticsearch: ElasticsearchConfig{Index: "x"}}, wantErr: "logs.elasticsearch.addresses"},
		{name: "upper-case index", cfg: es(ElasticsearchConfig{Index: "Drover"}), wantErr: "logs.elasticsearch.index"},
		{name: "index with a star", cfg: es(ElasticsearchConfig{Index: "drover*"}), wantErr: "logs.elasticsearch.index"},
		{name: "index with an underscore first", cfg: es(ElasticsearchConfig{Index: "_drover"}), wantErr: "logs.elasticsearch.index"},
		{name: "username without password", cfg: es(ElasticsearchConfig{Username: "elastic"}), wantErr: "logs.elasticsearch.password"},
		{name: "password without username", cfg: es(ElasticsearchConfig{Password: "pw12345"}), wantErr: "logs.elasticsearch.username"},
		{name: "api key and password", cfg: es(ElasticsearchConfig{APIKey: "k3y-value", Username: "u", Password: "pw12345"}), wantErr: "logs.elasticsearch.api_key"},
		{name: "negative batch", cfg: es(ElasticsearchConfig{BatchLines: -1}), wantErr: "logs.elasticsearch.batch_lines"},
		{name: "negative flush interval", cfg: es(ElasticsearchConfig{FlushInterval: -time.Second}), wantErr: "logs.elasticsearch.flush_interval"},
		{name: "unknown level", cfg: Config{Level: "loud"}, wantErr: "logs.level"},
		{name: "negative buffer", cfg: Config{Buffer: -1}, wantErr: "logs.buffer"},
		{name: "tiny max line", cfg: Config{MaxLine: 100}, wantErr: "logs.max_line"},
		{name: "buffer bytes under max line", cfg: Config{BufferBytes: 1000}, wantErr: "logs.buffer_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			var ce *ConfigError
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && !errors.As(err, &ce):
				t.Fatalf("Validate: %v, want a *ConfigError", err)
			case tt.wantErr != "" && ce.Setting != tt.wantErr:
				t.Fatalf("Validate: %v, want it about %s", err, tt.wantErr)
			}
			if _, err := New(tt.cfg, Options{}); (err != nil) != (tt.wantErr != "") {
				t.Errorf("New: %v", err)
			}
		})
	}
}

func TestEnabled(t *testing.T) {
	if (Config{Buffer: 5}).Enabled() {
		t.Error("a config without destinations is enabled")
	}
	if !(Config{Logstash: LogstashConfig{Address: "h:1"}}).Enabled() || !(Config{Elasticsearch: ElasticsearchConfig{Addresses: []string{"http://h:1"}}}).Enabled() {
		t.Error("a config with a destination is not enabled")
	}
}

func TestNotEnabledShipsNothing(t *testing.T) {
	s := newShipper(t, Config{}, Options{})
	if n, err := s.Write([]byte(`{"i":1}` + "\n")); n != 8 || err != nil {
		t.Errorf("Write: %d, %v", n, err)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("stats %+v", st)
	}
}

// syncBuffer is a buffer for a logger written from the shipper's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestSecretsNeverShown(t *testing.T) {
	const password, apiKey = "s3cret-Pa55word", "a2V5LWlkOmFwaS1rZXktc2VjcmV0"
	es := newESStandIn(t)
	es.user, es.password = "elastic", "the-right-one"
	es.start("")
	var own syncBuffer
	s := newShipper(t, Config{Elasticsearch: ElasticsearchConfig{Addresses: []string{es.url()}, Username: "elastic", Password: password, FlushInterval: time.Millisecond}},
		Options{Logger: zerolog.New(&own)})
	s.Write([]byte(`{"message":"hello"}` + "\n"))
	// The shipper records the error in its stats, then logs it: wait for both.
	eventually(t, "the 401, in the stats and the shipper's own log", func() bool {
		return strings.Contains(s.Stats().Elasticsearch.LastError, "401") && strings.Contains(own.String(), "401")
	})

	st := s.Stats()
	shown := []string{fmt.Sprintf("%+v", st), st.Elasticsearch.LastError, own.String()}
	if !strings.Contains(st.Elasticsearch.LastError, builtins.Redacted) {
		t.Errorf("LastError %q: the stand-in echoed the password, want it redacted", st.Elasticsearch.LastError)
	}
	if !strings.Contains(own.String(), "401") {
		t.Errorf("the shipper's own log %q does not say what failed", own.String())
	}
	if st.Elasticsearch.Queued != 1 {
		t.Errorf("stats %+v: want the line kept while authentication fails", st.Elasticsearch)
	}

	// Nor in configuration errors, nor in an api key's.
	bad := Config{Elasticsearch: ElasticsearchConfig{Addresses: []string{"http://elastic:" + password + "@es:9200", "ftp://elastic:" + password + "@es"}, Password: password, APIKey: apiKey}}
	if _, err := New(bad, Options{}); err == nil {
		t.Fatal("New of a bad configuration")
	} else {
		shown = append(shown, err.Error())
	}
	for _, text := range shown {
		if strings.Contains(text, password) || strings.Contains(text, apiKey) {
			t.Errorf("a secret shows in %q", text)
		}
	}
}

func TestLongLineCut(t *testing.T) {
	ls := newLogstashStandIn(t, "127.0.0.1:0", true)
	s := newShipper(t, Config{Logstash: LogstashConfig{Address: ls.addr()}, MaxLine: 1024}, Options{})
	log := zerolog.New(s)
	big := strings.Repeat("é", 5000)
	log.Info().Str("run", "r1").Str("step", "3").Dict("attrs", zerolog.Dict().Str("body", big)).Msg("response: " + big)
	s.Write([]byte(strings.Repeat("plain text, not JSON ", 200) + "\n"))
	log.Info().Str("run", "r1").Msg("short")

	eventually(t, "three lines", func() bool { return ls.count() == 3 && s.Stats().Logstash.Shipped == 3 })
	lines, bad := ls.received()
	if len(bad) > 0 {
		t.Fatalf("not JSON: %q", bad)
	}
	for i, line := range lines[:2] {
		var got map[string]any
		json.Unmarshal([]byte(line), &got)
		if len(line) > 1024 || got["truncated"] != true || got["original_bytes"] == nil {
			t.Errorf("line %d, %d bytes: %.200q, want at most 1024, truncated", i, len(line), line)
		}
		if msg, _ := got["message"].(string); len(msg) < 300 || !utf8.ValidString(msg) {
			t.Errorf("line %d: message %q, want its beginning, valid UTF-8", i, msg)
		}
	}
	var first map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	if first["level"] != "info" || first["run"] != "r1" || first["step"] != "3" || first["attrs"] != nil {
		t.Errorf("cut line %q: want level, run and step kept, attrs left out", lines[0])
	}
	if lines[2] != `{"level":"info","run":"r1","message":"short"}` {
		t.Errorf("a short line became %q", lines[2])
	}
	if st := s.Stats(); st.Truncated != 2 || st.Logstash.Shipped != 3 {
		t.Errorf("stats %+v, want 2 truncated, 3 shipped", st)
	}
}

func TestCut(t *testing.T) {
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name, line string
		want       map[string]any // fields the cut line has (nil: absent)
	}{
		{name: "message cut", line: `{"level":"warn","message":"` + long + `"}`, want: map[string]any{"level": "warn", "truncated": true, "original_bytes": 3029.0}},
		{name: "big field left out", line: `{"a":1,"attrs":{"x":"` + long + `"},"message":"m","b":[1,2]}`, want: map[string]any{"a": 1.0, "attrs": nil, "message": "m", "b": []any{1.0, 2.0}}},
		{name: "escapes", line: `{"message":"` + strings.Repeat(`\"\n<&`, 1000) + `"}`},
		{name: "old marker replaced", line: `{"truncated":"no","original_bytes":1,"message":"` + long + `"}`, want: map[string]any{"truncated": true}},
		{name: "not an object", line: `[` + long + `]`},
		{name: "invalid inside", line: `{"a":tru,"message":"` + long + `"}`, want: map[string]any{"a": nil}},
		{name: "invalid UTF-8", line: `{"message":"` + strings.Repeat("\xff", 3000) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := cut([]byte(tt.line), 1024, "message")
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("cut: %q: %v", out, err)
			}
			if len(out) > 1024 || got["truncated"] != true {
				t.Errorf("cut: %d bytes, %.100q", len(out), out)
			}
			if _, ok := got["message"].(string); !ok {
				t.Errorf("cut: %.100q has no message", out)
			}
			for k, v := range tt.want {
				if fmt.Sprint(got[k]) != fmt.Sprint(v) {
					t.Errorf("cut: %s is %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestLineTime(t *testing.T) {
	tests := []struct {
		line string
		want string // RFC 3339 in UTC; "" for none
	}{
		{`{"time":"2026-12-02T10:00:00.123Z"}`, "2026-12-02T10:00:00.123Z"},
		{` { "level" : "info" , "time" : "2026-12-02T01:00:00.000000001+02:00" } `, "2026-12-01T23:00:00.000000001Z"},
		{`{"attrs":{"time":"1999-01-01T00:00:00Z","q":"}\"{"},"list":[{"time":1}],"time":"2026-12-02T10:00:00Z"}`, "2026-12-02T10:00:00Z"},
		{`{"message":"\"time\":\"2020-01-01T00:00:00Z\""}`, ""},
		{`{"time":1764669600}`, ""},
		{`{"time":"yesterday"}`, ""},
		{`not json`, ""},
	}
	for _, tt := range tests {
		got, ok := lineTime([]byte(tt.line), "time")
		if s := got.UTC().Format(time.RFC3339Nano); ok != (tt.want != "") || ok && s != tt.want {
			t.Errorf("lineTime(%s) = %s, %v; want %q", tt.line, s, ok, tt.want)
		}
	}
}

func TestSeveralLinesInOneWrite(t *testing.T) {
	ls := newLogstashStandIn(t, "127.0.0.1:0", true)
	s := newShipper(t, Config{Logstash: LogstashConfig{Address: ls.addr()}}, Options{})
	s.Write([]byte("{\"i\":1}\n\n{\"i\":2}\n{\"i\":3}"))
	eventually(t, "three lines", func() bool { return ls.count() == 3 })
	if lines, _ := ls.received(); strings.Join(lines, " ") != `{"i":1} {"i":2} {"i":3}` {
		t.Errorf("received %q", lines)
	}
}

func TestLevel(t *testing.T) {
	ls := newLogstashStandIn(t, "127.0.0.1:0", true)
	s := newShipper(t, Config{Logstash: LogstashConfig{Address: ls.addr()}, Level: "info"}, Options{})
	log := zerolog.New(zerolog.MultiLevelWriter(s))
	log.Debug().Msg("not shipped")
	log.Info().Msg("shipped")
	log.Log().Msg("no level: shipped")
	eventually(t, "two lines", func() bool { return ls.count() == 2 })
	if lines, _ := ls.received(); !strings.Contains(lines[0], `"shipped"`) {
		t.Errorf("received %q", lines)
	}
}

func TestOwnLinesNotShipped(t *testing.T) {
	var stderr syncBuffer
	var s *Shipper
	// The shipper's logger writes to stderr and to the shipper itself.
	s = newShipper(t, Config{Logstash: LogstashConfig{Address: freeAddr(t)}}, Options{
		Logger: zerolog.New(zerolog.MultiLevelWriter(&stderr, writerFunc(func(p []byte) (int, error) { return s.Write(p) }))),
	})
	s.Write([]byte(`{"i":1}` + "\n"))
	eventually(t, "the shipper's warning", func() bool { return strings.Contains(stderr.String(), "logstash fails") })
	if st := s.Stats().Logstash; st.Queued != 1 {
		t.Errorf("stats %+v: want only the line written queued, not the shipper's own", st)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestClose(t *testing.T) {
	ls := newLogstashStandIn(t, "127.0.0.1:0", true)
	es := newESStandIn(t).start("")
	cfg := Config{Logstash: LogstashConfig{Address: ls.addr()}, Elasticsearch: ElasticsearchConfig{Addresses: []string{es.url()}, FlushInterval: time.Hour}}
	s, err := New(cfg, Options{Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		fmt.Fprintf(s, `{"i":%d}`+"\n", i)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if es.count() != 10 {
		t.Errorf("Elasticsearch has %d lines after Close, want the 10 queued", es.count())
	}
	fmt.Fprint(s, `{"i":10}`+"\n")
	st := s.Stats()
	if st.Logstash.Shipped != 10 || st.Logstash.Dropped != 1 || st.Elasticsearch.Shipped != 10 || st.Elasticsearch.Dropped != 1 {
		t.Errorf("stats %+v, want 10 shipped each, the line written after Close dropped", st)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("Close again: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 5: 1600 * time.Millisecond, 8: 10 * time.Second, 100: 10 * time.Second} {
		for range 20 {
			if d := Backoff(n); d < want/2 || d > want {
				t.Errorf("Backoff(%d) = %s, want %s to %s", n, d, want/2, want)
			}
		}
	}
}
