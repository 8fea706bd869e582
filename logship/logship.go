// Package logship ships a node's log lines to Logstash and Elasticsearch
// without ever making the logger wait: a *Shipper is an io.Writer (and a
// zerolog.LevelWriter) to put beside stderr in a zerolog.MultiLevelWriter.
//
//	logs:
//	  logstash:
//	    address: 127.0.0.1:5000     # a tcp input with codec => json_lines
//	  elasticsearch:
//	    addresses: [http://127.0.0.1:9200]
//	    index: drover-logs          # a line goes to drover-logs-2026.12.02, its time's UTC day
//	    username: elastic
//	    password: ${ES_PASSWORD}    # secret
//	    api_key: ${ES_API_KEY}      # secret; instead of username and password
//	    batch_lines: 1000           # a _bulk request every 1000 lines...
//	    flush_interval: 1s          # ...or 1s after its first line
//	  level: info                   # the least level shipped (default: every line)
//	  buffer: 10000                 # lines held per destination while it is slow or down
//	  buffer_bytes: 33554432        # and their bytes (32 MiB)
//	  max_line: 65536               # a longer line is cut
//
// Write copies the line into one bounded queue per destination and
// returns: it never blocks on a destination and never fails. A line that
// finds a queue full (Buffer lines or BufferBytes held, those in flight
// included) is dropped for that destination and counted (Stats). Each
// destination has one goroutine that empties its queue:
//
//   - Logstash: one TCP connection, lines newline-delimited (what the tcp
//     input's json_lines codec reads), written in batches through a
//     buffer. A batch is removed from the queue once written to the
//     connection (TCP says no more: Shipped counts lines the kernel took).
//     On an error the connection is closed and dialled again after a
//     backoff (100 ms doubling to 10 s, with jitter) and the batch is
//     written again, whole: a line may arrive twice (and a line the broken
//     connection cut may reach Logstash as a parse failure first). A
//     write that waits 30 s for a stuck reader counts as an error.
//   - Elasticsearch: _bulk requests through go-elasticsearch, each line an
//     "index" action into its day's index: the UTC day of its time field
//     (zerolog.TimestampFieldName, RFC 3339), or of the clock for a line
//     without one. A request is sent when
//     BatchLines lines are queued, or FlushInterval after the first of
//     them. An item Elasticsearch refuses is counted Failed (one refused
//     with 429, too busy, is sent again); a request that fails (no
//     connection, 5xx, 429, 401, 403) is sent again after a backoff,
//     while the queue keeps bounding memory. Any other 4xx fails its batch.
//
// A line longer than MaxLine is cut rather than dropped, since its level,
// time, run and step say what happened: it keeps its top-level fields of up
// to 512 bytes, its message cut to fit, and gains "truncated":true and
// "original_bytes":N; larger fields (attrs) are left out. A line that is
// not a JSON object is shipped as {"message": its beginning, ...}.
//
// The shipper's own problems (a destination down, lines refused) go to
// Options.Logger, once per change rather than once per line, and are never
// shipped: a line the shipper logs while writing it into itself (a logger
// writing to both stderr and the shipper) is left out, so a failing
// destination cannot feed itself. Secrets (the password, the API key) are
// recorded with builtins.Secret at New and redacted from every error, log
// line and Stats.
//
// Close stops taking lines and ships the queued ones until its context
// ends.
//
// A real Logstash or Elasticsearch cannot run on the machine where these
// tests run, so they use stand-ins of the documented protocols: a TCP
// listener reading json_lines, and an httptest server answering _bulk as
// Elasticsearch does (NDJSON in, per-item statuses out, the
// X-Elastic-Product header the client checks).
package logship

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/starlark/builtins"
)

// Options are a Shipper's collaborators; the zero value works.
type Options struct {
	// Logger receives the shipper's own problems: give it stderr. Lines it
	// writes back into the shipper are not shipped. Zero: none.
	Logger zerolog.Logger
	// Backoff returns the wait before attempt n (1, 2, ...) to reach a
	// destination again (nil: 100 ms doubling to 10 s, with jitter).
	Backoff func(n int) time.Duration
	// Now is the clock that dates lines without a time, for their index
	// (nil: time.Now).
	Now func() time.Time
}

// Stats is what a Shipper has done since New.
type Stats struct {
	Logstash      DestinationStats
	Elasticsearch DestinationStats
	// Truncated counts the lines cut to MaxLine.
	Truncated uint64
}

// DestinationStats is what a Shipper has done for one destination. Every
// line written (at the configured level) is, for each destination,
// shipped, dropped, failed or queued.
type DestinationStats struct {
	// Enabled tells whether the configuration has the destination.
	Enabled bool
	// Shipped counts the lines the destination took.
	Shipped uint64
	// Dropped counts the lines that found its queue full (or were
	// written after Close began, or still queued when Close ended).
	Dropped uint64
	// Failed counts the lines it refused (Elasticsearch's item errors).
	Failed uint64
	// Queued is how many lines wait, those in flight included.
	Queued int
	// Connected tells whether the last attempt to reach it succeeded.
	Connected bool
	// LastError is the last error (secrets redacted), and LastErrorAt
	// when it happened; it stays after the destination recovers.
	LastError   string
	LastErrorAt time.Time
}

// A Shipper ships log lines to the configured destinations. Its methods
// may be called concurrently.
type Shipper struct {
	minLevel zerolog.Level
	maxLine  int
	msgKey   string
	dests    []*dest // those configured
	logstash *dest
	elastic  *dest

	log        zerolog.Logger
	selfLogs   atomic.Int32 // the shipper is logging: its lines, marked, are not shipped
	truncated  atomic.Uint64
	backoff    func(n int) time.Duration
	now        func() time.Time
	stopping   chan struct{}      // closed when Close begins
	hard       context.Context    // ended when Close gives up
	cancelHard context.CancelFunc //
	closeOnce  sync.Once          // Close begins
	endOnce    sync.Once          // Close ends
	wg         sync.WaitGroup
	closers    []func()
}

var _ zerolog.LevelWriter = (*Shipper)(nil)

// dest is a destination: its queue and its health.
type dest struct {
	name string
	q    *queue

	mu         sync.Mutex
	connected  bool
	lastErr    string
	lastErrAt  time.Time
	lastLogged time.Time // rate-limits the shipper's own lines about refusals
	failing    bool      // the shipper logged that the destination fails
}

// selfMarker is the field the shipper adds to its own lines.
var selfMarker = []byte(`"component":"logship"`)

// New returns a Shipper for cfg, its goroutines started. A cfg that is not
// Enabled gives a Shipper that ships nothing. It records cfg's secrets with
// builtins.Secret.
func New(cfg Config, opts Options) (*Shipper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, s := range builtins.SecretsOf(cfg) {
		builtins.Secret(s)
	}
	cfg = cfg.withDefaults()
	s := &Shipper{
		minLevel: zerolog.TraceLevel,
		maxLine:  cfg.MaxLine,
		msgKey:   zerolog.MessageFieldName,
		log:      opts.Logger.With().Str("component", "logship").Logger(),
		backoff:  opts.Backoff,
		now:      opts.Now,
		stopping: make(chan struct{}),
	}
	if cfg.Level != "" {
		s.minLevel, _ = zerolog.ParseLevel(cfg.Level)
	}
	if s.backoff == nil {
		s.backoff = Backoff
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.hard, s.cancelHard = context.WithCancel(context.Background())
	var starts []func()
	if len(cfg.Elasticsearch.Addresses) > 0 {
		e, err := newElastic(s, cfg)
		if err != nil {
			s.cancelHard()
			return nil, fmt.Errorf("logship: elasticsearch: %s", builtins.Redact(err.Error()))
		}
		s.elastic = e.dest
		starts = append(starts, e.run)
	}
	if cfg.Logstash.Address != "" {
		l := newLogstash(s, cfg)
		s.logstash = l.dest
		starts = append(starts, l.run)
	}
	for _, d := range []*dest{s.logstash, s.elastic} {
		if d != nil {
			s.dests = append(s.dests, d)
		}
	}
	for _, run := range starts {
		s.wg.Go(run)
	}
	return s, nil
}

// Backoff is the default wait before attempt n to reach a destination
// again: 100 ms doubling to 10 s, each between half and all of that.
func Backoff(n int) time.Duration {
	d := 10 * time.Second
	if n < 8 {
		d = min(d, 100*time.Millisecond<<max(n-1, 0))
	}
	return d/2 + rand.N(d/2+1)
}

// Write ships p, one line or more (zerolog writes one JSON object and a
// newline). It copies p and returns at once: it always returns len(p), nil.
func (s *Shipper) Write(p []byte) (int, error) {
	if s.selfLogs.Load() > 0 && bytes.Contains(p, selfMarker) {
		return len(p), nil // the shipper's own line: shipping it could feed a loop
	}
	for rest := p; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(line) > 0 {
			s.ship(line)
		}
	}
	return len(p), nil
}

// WriteLevel is Write of a line at level l: a line under the configured
// level is not shipped.
func (s *Shipper) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < s.minLevel {
		return len(p), nil
	}
	return s.Write(p)
}

// ship adds one line, without its newline, to each destination's queue.
func (s *Shipper) ship(line []byte) {
	owned := false
	if len(line) > s.maxLine {
		line, owned = cut(line, s.maxLine, s.msgKey), true
		s.truncated.Add(1)
	}
	for _, d := range s.dests {
		if kept := d.q.add(line, owned); kept != nil {
			line, owned = kept, true // one copy for every queue
		}
	}
}

// Stats returns what the shipper has done so far.
func (s *Shipper) Stats() Stats {
	return Stats{Logstash: s.logstash.stats(), Elasticsearch: s.elastic.stats(), Truncated: s.truncated.Load()}
}

func (d *dest) stats() DestinationStats {
	if d == nil {
		return DestinationStats{}
	}
	st := DestinationStats{Enabled: true}
	st.Queued, st.Shipped, st.Dropped, st.Failed = d.q.counts()
	d.mu.Lock()
	defer d.mu.Unlock()
	st.Connected, st.LastError, st.LastErrorAt = d.connected, d.lastErr, d.lastErrAt
	return st
}

// Close stops taking lines (those written from now on are dropped) and
// ships the queued ones until ctx ends; then it stops, counting the lines
// left dropped, and returns an error saying how many. Calling it again
// does nothing more.
func (s *Shipper) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		for _, d := range s.dests {
			d.q.close()
		}
		close(s.stopping)
	})
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancelHard()
		<-done
	}
	s.cancelHard()
	left := 0
	for _, d := range s.dests {
		left += d.q.abandon()
	}
	s.endOnce.Do(func() {
		for _, c := range s.closers {
			c()
		}
	})
	if left > 0 {
		return fmt.Errorf("logship: closed with %d lines not shipped: %w", left, ctx.Err())
	}
	return nil
}

// waitLines waits until q has lines, and reports whether it has: false when
// Close has begun and q is empty, or Close gave up.
func (s *Shipper) waitLines(q *queue) bool {
	for s.hard.Err() == nil {
		if q.len() > 0 {
			return true
		}
		select {
		case <-q.wake:
		case <-s.stopping:
			if q.len() == 0 {
				return false
			}
		case <-s.hard.Done():
		}
	}
	return false
}

// sleep waits d, and reports false if Close gave up meanwhile.
func (s *Shipper) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.hard.Done():
		return false
	}
}

// isStopping reports whether Close has begun.
func (s *Shipper) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// logf logs one of the shipper's own lines, marked so that Write leaves it
// out.
func (s *Shipper) logf(level zerolog.Level, d *dest, err error, format string, args ...any) {
	s.selfLogs.Add(1)
	defer s.selfLogs.Add(-1)
	e := s.log.WithLevel(level).Str("destination", d.name)
	if err != nil {
		e = e.Str("error", builtins.Redact(err.Error()))
	}
	e.Msgf(format, args...)
}

// failed records that the destination failed to take a batch, which will
// be sent again (reachable: it answered, with an error), and logs the first
// failure since it last took one.
func (s *Shipper) failed(d *dest, err error, reachable bool) {
	msg := builtins.Redact(err.Error())
	d.mu.Lock()
	d.connected = reachable
	d.lastErr, d.lastErrAt = msg, s.now()
	first := !d.failing
	d.failing = true
	d.mu.Unlock()
	if first {
		s.logf(zerolog.WarnLevel, d, err, "logship: %s fails; queueing lines and trying again", d.name)
	}
}

// reached records that the destination answered, and logs its recovery.
func (s *Shipper) reached(d *dest) {
	d.mu.Lock()
	d.connected = true
	recovered := d.failing
	d.failing = false
	d.mu.Unlock()
	if recovered {
		s.logf(zerolog.InfoLevel, d, nil, "logship: %s takes lines again", d.name)
	}
}

// refused records that the destination refused n of total lines, and logs
// it at most once a minute.
func (s *Shipper) refused(d *dest, err error, n, total int) {
	now := s.now()
	d.mu.Lock()
	d.lastErr, d.lastErrAt = builtins.Redact(err.Error()), now
	log := now.Sub(d.lastLogged) >= time.Minute
	if log {
		d.lastLogged = now
	}
	d.mu.Unlock()
	if log {
		s.logf(zerolog.WarnLevel, d, err, "logship: %s refused %d of %d lines (logged at most once a minute; see Stats)", d.name, n, total)
	}
}
