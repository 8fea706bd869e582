// Package logs makes the lines a run logs part of the run: published on the
// run's subject of the bus (kept as long as journals are), readable back in
// order from every node, and tailed live across the cluster by attribute
// (one customer) without a scan.
//
// A run's logger writes through a Writer: each line goes to the run's
// subject (bus.LogSubject), to the node's own output, and to every live tail
// (a Tap) whose predicates the run matches. A tail is a subscription: the
// follower puts its Tap in the taps bucket (bus.TapsBucket), every node
// watches that bucket (Taps) and publishes the lines that match on the tap's
// own subject. When nobody follows, a line costs one publish. Attribute
// values never appear in a subject: customer ids stay out of the stream's
// index and of any label.
//
// A run's volume is bounded (Writer's limit): past it, one marker line says
// so and the rest of the run's lines are cut from the bus (the node's own
// output still gets them).
package logs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/bus"
)

// DefaultLimit is how many lines a run may publish unless the node says
// otherwise.
const DefaultLimit = 10000

// MaxLine is the longest line published; a longer one is cut (its message
// and fields replaced by a note of its size).
const MaxLine = 16 << 10

// A Tap is what a follower of live lines wants: the lines of runs whose
// attributes include every one of Attrs, and, when set, of run Run, of
// script Script, written on node Node, at level Level or above.
type Tap struct {
	ID      string            `json:"id"`
	Run     string            `json:"run,omitempty"`
	Attrs   map[string]string `json:"attrs,omitempty"`
	Script  string            `json:"script,omitempty"`
	Node    string            `json:"node,omitempty"`
	Level   zerolog.Level     `json:"level"`
	Expires time.Time         `json:"expires"`
}

// Matches reports whether a line of level, written on node for run of
// script with attributes attrs, is one t wants.
func (t *Tap) Matches(run, script, node string, level zerolog.Level, attrs map[string]string) bool {
	if level < t.Level || t.Run != "" && t.Run != run || t.Script != "" && t.Script != script || t.Node != "" && t.Node != node {
		return false
	}
	for k, v := range t.Attrs {
		if attrs[k] != v {
			return false
		}
	}
	return true
}

// Taps is a node's view of the live tails being followed in the cluster.
type Taps struct {
	taps atomic.Pointer[[]*Tap]
}

// WatchTaps keeps a view of b's taps bucket until ctx ends.
func WatchTaps(ctx context.Context, b *bus.Bus, log *zerolog.Logger) (*Taps, error) {
	t := &Taps{}
	t.taps.Store(&[]*Tap{})
	updates, err := b.Bucket(bus.TapsBucket).Watch(ctx, ">")
	if err != nil {
		return nil, fmt.Errorf("logs: watch the taps: %w", err)
	}
	go func() {
		byKey := map[string]*Tap{}
		for e := range updates {
			if e.Value == nil {
				delete(byKey, e.Key)
			} else {
				var tap Tap
				if err := json.Unmarshal(e.Value, &tap); err != nil {
					log.Warn().Str("tap", e.Key).Err(err).Msg("a live log tail that does not decode; ignored")
					continue
				}
				byKey[e.Key] = &tap
			}
			now := time.Now()
			list := make([]*Tap, 0, len(byKey))
			for k, tap := range byKey {
				if now.After(tap.Expires) {
					delete(byKey, k) // its follower is gone (no delete marker on expiry)
					continue
				}
				list = append(list, tap)
			}
			t.taps.Store(&list)
		}
	}()
	return t, nil
}

// each calls fn with every live tap.
func (t *Taps) each(now time.Time, fn func(*Tap)) {
	if t == nil {
		return
	}
	for _, tap := range *t.taps.Load() {
		if now.Before(tap.Expires) {
			fn(tap)
		}
	}
}

// Writer is the zerolog.LevelWriter of one run's logger on one node. It is
// safe for concurrent use.
type Writer struct {
	bus              *bus.Bus
	taps             *Taps
	out              io.Writer     // the node's own output, or nil
	outLevel         zerolog.Level // the lowest level out gets
	run, script, nod string
	limit            int64
	attrs            atomic.Pointer[map[string]string]
	lines            atomic.Int64
}

// WriterOptions configure a run's Writer.
type WriterOptions struct {
	Bus  *bus.Bus
	Taps *Taps
	// Out receives every line too, at OutLevel or above (the node's own
	// log output), or nil.
	Out      io.Writer
	OutLevel zerolog.Level
	Run      string
	Script   string
	Node     string
	Attrs    map[string]string
	// Limit is how many lines the run may publish (default DefaultLimit).
	Limit int
}

// NewWriter returns the Writer of a run.
func NewWriter(o WriterOptions) *Writer {
	if o.Limit <= 0 {
		o.Limit = DefaultLimit
	}
	w := &Writer{bus: o.Bus, taps: o.Taps, out: o.Out, outLevel: o.OutLevel, run: o.Run, script: o.Script, nod: o.Node, limit: int64(o.Limit)}
	w.SetAttrs(o.Attrs)
	return w
}

// SetAttrs replaces the run's attributes that taps are matched against
// (after tag()).
func (w *Writer) SetAttrs(attrs map[string]string) {
	m := maps.Clone(attrs)
	w.attrs.Store(&m)
}

// Write implements io.Writer: a line with no level.
func (w *Writer) Write(p []byte) (int, error) { return w.WriteLevel(zerolog.NoLevel, p) }

// WriteLevel implements zerolog.LevelWriter. It never fails: a line that
// cannot be published is lost, and the run goes on.
func (w *Writer) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if w.out != nil && level >= w.outLevel {
		w.out.Write(p)
	}
	n := w.lines.Add(1)
	switch {
	case n > w.limit+1:
		return len(p), nil
	case n == w.limit+1:
		p = fmt.Appendf(nil, `{"level":"warn","node":%q,"run":%q,"time":%q,"message":"log cut: this run wrote more than %d lines; the rest are on its nodes' own output only (raise the node's --run-log-lines)"}`+"\n",
			w.nod, w.run, time.Now().UTC().Format(time.RFC3339Nano), w.limit)
		level = zerolog.WarnLevel
	case len(p) > MaxLine:
		p = fmt.Appendf(nil, `{"level":%q,"node":%q,"run":%q,"time":%q,"message":"a line of %d bytes, over the limit of %d, was cut"}`+"\n",
			level.String(), w.nod, w.run, time.Now().UTC().Format(time.RFC3339Nano), len(p), MaxLine)
	}
	w.bus.PublishLog(w.run, p)
	attrs := *w.attrs.Load()
	w.taps.each(time.Now(), func(t *Tap) {
		if t.Matches(w.run, w.script, w.nod, level, attrs) {
			w.bus.PublishTap(t.ID, p)
		}
	})
	return len(p), nil
}

// Line is what a follower reads of a line: its level, run and time, for
// ordering and filtering, besides the line itself.
type Line struct {
	Level zerolog.Level
	Run   string
	Node  string
	Time  time.Time
	Raw   json.RawMessage
}

// Parse decodes what Follow and Read need of a line.
func Parse(raw []byte) (Line, error) {
	var l struct {
		Level string `json:"level"`
		Run   string `json:"run"`
		Node  string `json:"node"`
		Time  string `json:"time"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return Line{}, err
	}
	level, err := zerolog.ParseLevel(l.Level)
	if err != nil {
		level = zerolog.NoLevel
	}
	t, _ := time.Parse(time.RFC3339Nano, l.Time)
	return Line{Level: level, Run: l.Run, Node: l.Node, Time: t, Raw: bytes.TrimRight(raw, "\n")}, nil
}

// ParseLevel reads a level name given by a user (--level warn).
func ParseLevel(s string) (zerolog.Level, error) {
	switch s {
	case "":
		return zerolog.DebugLevel, nil
	case "debug", "info", "warn", "error":
		return zerolog.ParseLevel(s)
	}
	return zerolog.NoLevel, fmt.Errorf("unknown log level %q: want debug, info, warn or error", s)
}

// Follow registers tap (its ID and Expires are set here) and calls fn with
// each line the cluster's nodes publish for it, until ctx ends. fn is called
// from one goroutine; a follower slower than the lines arrive loses lines
// beyond a buffer of buffer lines, and fn is told how many (dropped > 0,
// line nil) before the next line it gets. Its first call, with neither a
// line nor a count, says the tap is in place.
func Follow(ctx context.Context, b *bus.Bus, tap Tap, buffer int, fn func(line []byte, dropped int)) error {
	var id [8]byte
	rand.Read(id[:])
	tap.ID = hex.EncodeToString(id[:])
	lines := make(chan []byte, max(buffer, 1))
	var dropped atomic.Int64
	unsub, err := b.Subscribe(bus.TapSubject(tap.ID), func(m bus.Msg) {
		select {
		case lines <- m.Data:
		default:
			dropped.Add(1)
		}
	})
	if err != nil {
		return fmt.Errorf("logs: follow: %w", err)
	}
	defer unsub()
	taps := b.Bucket(bus.TapsBucket)
	put := func() error {
		tap.Expires = time.Now().Add(bus.TapTTL)
		v, _ := json.Marshal(tap)
		_, err := taps.Put(ctx, tap.ID, v)
		return err
	}
	if err := put(); err != nil {
		return fmt.Errorf("logs: follow: register the tail: %w", err)
	}
	fn(nil, 0) // in place
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		taps.Delete(dctx, tap.ID)
	}()
	refresh := time.NewTicker(bus.TapTTL / 3)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			if err := put(); err != nil && ctx.Err() == nil {
				return fmt.Errorf("logs: follow: refresh the tail: %w", err)
			}
		case line := <-lines:
			if d := dropped.Swap(0); d > 0 {
				fn(nil, int(d))
			}
			fn(line, 0)
		}
	}
}

// Read calls fn with the stored lines of each run in runs, at level or
// above and written on node (when set), from since, merged in time order.
func Read(ctx context.Context, b *bus.Bus, runs []string, since time.Time, level zerolog.Level, node string, fn func(Line) bool) error {
	var all []Line
	for _, run := range runs {
		err := b.RunLogs(ctx, run, since, func(raw []byte, at time.Time) bool {
			l, err := Parse(raw)
			if err != nil {
				return true
			}
			if l.Time.IsZero() {
				l.Time = at
			}
			if l.Level >= level || l.Level == zerolog.NoLevel {
				if node == "" || l.Node == node {
					all = append(all, l)
				}
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	if len(runs) > 1 {
		sortLines(all)
	}
	for _, l := range all {
		if !fn(l) {
			return nil
		}
	}
	return nil
}

// sortLines orders lines by time, stable for lines of one run.
func sortLines(ls []Line) {
	slices.SortStableFunc(ls, func(a, b Line) int { return a.Time.Compare(b.Time) })
}

var _ zerolog.LevelWriter = (*Writer)(nil)
