package logship

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/rs/zerolog"
)

const (
	// bulkBytes bounds a _bulk request's lines (Elasticsearch takes up to
	// 100 MB by default; its guide suggests a few MB).
	bulkBytes = 5 << 20
	// requestTimeout bounds one _bulk request.
	requestTimeout = 30 * time.Second
)

// elastic ships a queue to Elasticsearch's _bulk API.
type elastic struct {
	*dest
	s        *Shipper
	client   *elasticsearch.Client
	prefix   string // the index's name before its day
	timeKey  string
	lines    int
	interval time.Duration

	body  bytes.Buffer
	batch [][]byte
	day   time.Time // the day of index
	index string
}

func newElastic(s *Shipper, cfg Config) (*elastic, error) {
	c := cfg.Elasticsearch
	client, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: c.Addresses,
		Username:  c.Username,
		Password:  c.Password,
		APIKey:    c.APIKey,
		// The shipper retries, with its backoff, while new lines queue.
		DisableRetry: true,
	})
	if err != nil {
		return nil, err
	}
	e := &elastic{
		dest:     &dest{name: "elasticsearch", q: newQueue(cfg.Buffer, cfg.BufferBytes, c.BatchLines)},
		s:        s,
		client:   client,
		prefix:   c.Index + "-",
		timeKey:  zerolog.TimestampFieldName,
		lines:    c.BatchLines,
		interval: c.FlushInterval,
	}
	s.closers = append(s.closers, func() { client.Close(context.Background()) })
	return e, nil
}

// run ships the queue until Close: a batch when BatchLines lines are
// queued, when the first of them has waited FlushInterval, or at once when
// Close began.
func (e *elastic) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var due time.Time // when the lines queued are due, though not a batch
	for e.s.waitLines(e.q) {
		if n := e.q.len(); n < e.lines && !e.s.isStopping() {
			now := time.Now()
			if due.IsZero() {
				due = now.Add(e.interval)
			}
			if now.Before(due) {
				timer.Reset(due.Sub(now))
				select {
				case <-e.q.wake:
				case <-timer.C:
				case <-e.s.stopping:
				case <-e.s.hard.Done():
				}
				timer.Stop()
				continue
			}
		}
		due = time.Time{}
		e.flush()
	}
}

// flush ships a batch from the head of the queue, retrying it (or its
// items Elasticsearch was too busy for) until it is settled or Close gives
// up, and removes it.
func (e *elastic) flush() {
	e.batch = e.q.peek(e.batch[:0], e.lines, bulkBytes)
	defer clear(e.batch)
	shipped, failed := 0, 0
	for try, todo := 1, e.batch; len(todo) > 0; try++ {
		ok, refused, again := e.bulk(todo)
		shipped, failed = shipped+ok, failed+refused
		if todo = again; len(todo) > 0 && !e.s.sleep(e.s.backoff(try)) {
			break
		}
	}
	e.q.remove(len(e.batch), shipped, failed)
}

// bulk sends lines in one _bulk request. It returns how many Elasticsearch
// took and refused, and the lines to send again.
func (e *elastic) bulk(lines [][]byte) (ok, refused int, again [][]byte) {
	e.body.Reset()
	for _, line := range lines {
		e.body.WriteString(`{"index":{"_index":"`)
		e.body.WriteString(e.indexOf(line))
		e.body.WriteString("\"}}\n")
		e.body.Write(line)
		e.body.WriteByte('\n')
	}
	ctx, cancel := context.WithTimeout(e.s.hard, requestTimeout)
	defer cancel()
	res, err := e.client.Bulk(bytes.NewReader(e.body.Bytes()),
		e.client.Bulk.WithContext(ctx),
		e.client.Bulk.WithHeader(map[string]string{"Content-Type": "application/x-ndjson"}),
		e.client.Bulk.WithFilterPath("errors", "items.*.status", "items.*.error.type", "items.*.error.reason"))
	if err != nil {
		if e.s.hard.Err() == nil { // not Close giving up
			e.s.failed(e.dest, fmt.Errorf("elasticsearch _bulk: %w", err), false)
		}
		return 0, 0, lines
	}
	defer res.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if res.IsError() {
		err := fmt.Errorf("elasticsearch _bulk: %s: %s", res.Status(), excerpt(body))
		switch s := res.StatusCode; {
		case s == http.StatusTooManyRequests, s == http.StatusRequestTimeout, s >= 500,
			// Elasticsearch also answers 401 while its security index
			// recovers; a key may be granted again: keep the lines.
			s == http.StatusUnauthorized, s == http.StatusForbidden:
			e.s.failed(e.dest, err, s < 500)
			return 0, 0, lines
		}
		e.s.reached(e.dest)
		e.s.refused(e.dest, err, len(lines), len(lines))
		return 0, len(lines), nil
	}
	e.s.reached(e.dest)
	var r struct {
		Errors bool                     `json:"errors"`
		Items  []map[string]bulkOutcome `json:"items"`
	}
	if rerr == nil {
		rerr = json.Unmarshal(body, &r)
	}
	if rerr != nil || !r.Errors {
		if rerr != nil { // the request succeeded: its lines count as taken
			e.s.refused(e.dest, fmt.Errorf("elasticsearch _bulk: %s, but its answer does not read: %v", res.Status(), rerr), 0, len(lines))
		}
		return len(lines), 0, nil
	}
	var first *bulkOutcome
	for i, line := range lines {
		o := bulkOutcome{Status: http.StatusInternalServerError} // not answered for
		if i < len(r.Items) {
			for _, item := range r.Items[i] { // one action: "index"
				o = item
			}
		}
		switch {
		case o.Status == http.StatusTooManyRequests:
			again = append(again, line)
		case o.Status >= 300 || o.Error != nil:
			refused++
			if first == nil {
				first = &o
			}
		default:
			ok++
		}
	}
	if first != nil {
		why := "no reason given"
		if first.Error != nil {
			why = first.Error.Type + ": " + first.Error.Reason
		}
		e.s.refused(e.dest, fmt.Errorf("elasticsearch refused %d of %d lines; the first with %d %s", refused, len(lines), first.Status, why), refused, len(lines))
	}
	return ok, refused, again
}

// bulkOutcome is a _bulk item's outcome.
type bulkOutcome struct {
	Status int `json:"status"`
	Error  *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// indexOf returns the index of line: the prefix and the UTC day of its
// time, or of now for a line without one.
func (e *elastic) indexOf(line []byte) string {
	t, ok := lineTime(line, e.timeKey)
	if !ok {
		t = e.s.now()
	}
	y, m, d := t.UTC().Date()
	if e.index == "" || y != e.day.Year() || m != e.day.Month() || d != e.day.Day() {
		e.day = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		e.index = e.prefix + e.day.Format("2006.01.02")
	}
	return e.index
}

// excerpt returns the beginning of an error's body, on one line.
func excerpt(body []byte) string {
	const most = 512
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > most {
		s = s[:most] + "..."
	}
	if s == "" {
		s = "(no body)"
	}
	return s
}
