package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// KV is one key/value bucket. Keys are dot-separated tokens of
// [-/_=.a-zA-Z0-9]; callers encode anything else (see EncodeKey).
type KV struct {
	kv jetstream.KeyValue
	b  *Bus
	// durable is set for a bucket on disk: its writes wait for the bus's
	// sync policy (Bus.synced).
	durable bool

	mu     sync.Mutex
	stream jetstream.Stream // the bucket's stream, looked up on first use
}

// Bucket returns one of Drover's buckets (RunsBucket, ScriptsBucket, DataBucket).
func (b *Bus) Bucket(name string) *KV {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buckets[name]
}

// streamName is the name of the stream that holds the bucket.
func (k *KV) streamName() string { return "KV_" + k.kv.Bucket() }

// subject is the stream subject of key.
func (k *KV) subject(key string) string { return "$KV." + k.kv.Bucket() + "." + key }

// getStream returns the bucket's stream, looked up on first use (without
// holding k.mu meanwhile: callers at once may each look it up).
func (k *KV) getStream(ctx context.Context) (jetstream.Stream, error) {
	k.mu.Lock()
	s := k.stream
	k.mu.Unlock()
	if s != nil {
		return s, nil
	}
	err := retry(ctx, func(ctx context.Context) (err error) {
		s, err = k.b.js.Stream(ctx, k.streamName())
		return err
	})
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stream == nil {
		k.stream = s
	}
	return k.stream, nil
}

// Get returns the value of key and its revision, or ErrNotFound.
func (k *KV) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	var e jetstream.KeyValueEntry
	err := retry(ctx, func(ctx context.Context) (err error) {
		e, err = k.kv.Get(ctx, key)
		return err
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, 0, fmt.Errorf("%w: key %s", ErrNotFound, key)
		}
		return nil, 0, fmt.Errorf("bus: get %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Put stores value under key and returns the new revision.
func (k *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	var rev uint64
	err := retry(ctx, func(ctx context.Context) (err error) {
		rev, err = k.kv.Put(ctx, key, value)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("bus: put %s: %w", key, err)
	}
	return rev, k.synced(ctx)
}

// synced waits until the bucket's acknowledged writes are on disk as the
// bus's sync policy requires.
func (k *KV) synced(ctx context.Context) error {
	if !k.durable {
		return nil
	}
	return k.b.synced(ctx)
}

// Create stores value under key only if key does not exist; otherwise ErrExists.
// (A create retried after a lost answer reports ErrExists for its own write:
// callers that must know compare the stored value with theirs.)
func (k *KV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	var rev uint64
	err := retry(ctx, func(ctx context.Context) (err error) {
		rev, err = k.kv.Create(ctx, key, value)
		return err
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			// The caller may rely on the stored value: wait for it too.
			return 0, errors.Join(fmt.Errorf("%w: key %s", ErrExists, key), k.synced(ctx))
		}
		return 0, fmt.Errorf("bus: create %s: %w", key, err)
	}
	return rev, k.synced(ctx)
}

// Update stores value under key only if the key's latest revision is last
// (compare-and-set); otherwise ErrConflict. A retried update whose first try
// was applied but unanswered also reports ErrConflict: callers that must know
// mark their writes and read the key back.
func (k *KV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	var rev uint64
	err := retry(ctx, func(ctx context.Context) (err error) {
		rev, err = k.kv.Update(ctx, key, value, last)
		return err
	})
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return 0, fmt.Errorf("%w: key %s", ErrConflict, key)
		}
		return 0, fmt.Errorf("bus: update %s: %w", key, err)
	}
	return rev, k.synced(ctx)
}

// Delete removes key (a no-op if it does not exist).
func (k *KV) Delete(ctx context.Context, key string) error {
	err := retry(ctx, func(ctx context.Context) error { return k.kv.Delete(ctx, key) })
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("bus: delete %s: %w", key, err)
	}
	return k.synced(ctx)
}

// Entry is one key and value from a bucket.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
	Time     time.Time // when the value was written (by the NATS server's clock)
}

// Values returns the current value of every key matching filter (NATS subject
// wildcards: "r.>", "a.customer.acme.*"), in one pass over the bucket's
// subject index, without a round trip per key.
func (k *KV) Values(ctx context.Context, filter string) ([]Entry, error) {
	w, err := k.kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("bus: list %s: %w", filter, err)
	}
	defer w.Stop()
	var out []Entry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok || e == nil { // nil marks the end of the initial values
				return out, nil
			}
			out = append(out, Entry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Time: e.Created()})
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Keys returns every key matching filter.
func (k *KV) Keys(ctx context.Context, filter string) ([]string, error) {
	l, err := k.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("bus: keys %s: %w", filter, err)
	}
	defer l.Stop()
	var out []string
	for key := range l.Keys() {
		out = append(out, key)
	}
	return out, nil
}

// EncodeKey makes s safe as one token of a KV key: letters, digits, '-' and '_'
// stay, every other byte becomes '=' and two hex digits.
func EncodeKey(s string) string {
	const hex = "0123456789ABCDEF"
	safe := true
	for i := 0; i < len(s); i++ {
		if !keyByteOK(s[i]) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	out := make([]byte, 0, len(s)*3+1)
	if s == "" {
		return "="
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keyByteOK(c) {
			out = append(out, c)
		} else {
			out = append(out, '=', hex[c>>4], hex[c&15])
		}
	}
	return string(out)
}

func keyByteOK(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// Watch delivers the current value of key (if any) and every later update until
// ctx ends; a deleted key is delivered with a nil Value.
func (k *KV) Watch(ctx context.Context, key string) (<-chan Entry, error) {
	w, err := k.kv.Watch(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("bus: watch %s: %w", key, err)
	}
	out := make(chan Entry, 4)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				ent := Entry{Key: e.Key(), Revision: e.Revision(), Time: e.Created()}
				if e.Operation() == jetstream.KeyValuePut {
					ent.Value = e.Value()
				}
				select {
				case out <- ent:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// PendingPut is a Put started by PutAsync.
type PendingPut struct {
	k   *KV
	key string
	fut jetstream.PubAckFuture
}

// PutAsync starts storing value under key without waiting for the server: call
// Wait before relying on it. Start a group of puts, then wait for each, to pay
// one round trip for all. Puts from one Bus are stored in the order started.
func (k *KV) PutAsync(key string, value []byte) (*PendingPut, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("bus: put %s: %w", key, jetstream.ErrInvalidKey)
	}
	// No headers (as Put): they would be stored with the value, and make
	// every direct get of it slower.
	fut, err := k.b.js.PublishMsgAsync(&nats.Msg{Subject: k.subject(key), Data: value}, asyncRetry...)
	if err != nil {
		return nil, k.putErr(key, err)
	}
	return &PendingPut{k: k, key: key, fut: fut}, nil
}

// Stored blocks until the put is acknowledged and returns the wait for it to
// be on disk under the sync policy: start a group of puts, take Stored of
// each, then call each wait, to pay one round trip and one sync for all.
func (p *PendingPut) Stored(ctx context.Context) (durable func(context.Context) error, err error) {
	select {
	case <-p.fut.Ok():
		if !p.k.durable {
			return noSync, nil
		}
		return p.k.b.syncedLater(), nil
	case err := <-p.fut.Err():
		return nil, fmt.Errorf("bus: put %s: %w", p.key, err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// noSync is the wait of a write with nothing to wait for.
func noSync(context.Context) error { return nil }

// Wait blocks until the put is stored and returns the key's new revision.
func (p *PendingPut) Wait(ctx context.Context) (uint64, error) {
	select {
	case ack := <-p.fut.Ok():
		return ack.Sequence, p.k.synced(ctx)
	case err := <-p.fut.Err():
		return 0, fmt.Errorf("bus: put %s: %w", p.key, err)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (k *KV) putErr(key string, err error) error {
	if isClosed(err) {
		return fmt.Errorf("%w: put %s", ErrClosed, key)
	}
	return fmt.Errorf("bus: put %s: %w", key, err)
}

// validKey reports whether key is a valid key: tokens of [-/_=a-zA-Z0-9]
// separated by single dots.
func validKey(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == '.' {
			if key[i-1] == '.' {
				return false
			}
			continue
		}
		if !keyByteOK(c) && c != '/' && c != '=' {
			return false
		}
	}
	return true
}

// Remove erases key and its history without leaving a delete marker, so that
// the key no longer shows in StoredKeys (Delete leaves a marker, which does).
// Watchers are not told. It is a no-op if the key does not exist.
func (k *KV) Remove(ctx context.Context, key string) error {
	s, err := k.getStream(ctx)
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(k.subject(key)))
	}
	if err != nil {
		return fmt.Errorf("bus: remove %s: %w", key, err)
	}
	return nil // not synced: a removal lost to a power loss leaves a key readers skip
}

// StoredKeys returns every key matching filter that holds a message: a value,
// or the marker that Delete leaves (Remove leaves none). Unlike Keys it reads no
// entries but the bucket's subject index, in one request, so it stays fast for
// tens of thousands of keys. The order is unspecified.
func (k *KV) StoredKeys(ctx context.Context, filter string) ([]string, error) {
	s, err := k.getStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("bus: keys %s: %w", filter, err)
	}
	var info *jetstream.StreamInfo
	err = retryEach(ctx, storedKeysAttempt, func(ctx context.Context) (err error) {
		info, err = s.Info(ctx, jetstream.WithSubjectFilter(k.subject(filter)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bus: keys %s: %w", filter, err)
	}
	prefix := k.subject("")
	out := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		out = append(out, strings.TrimPrefix(subj, prefix))
	}
	return out, nil
}

// storedKeysAttempt bounds each try of StoredKeys' request. The server's work
// grows with the keys listed (0.3 to 0.6 s for 100,000 on the 2-core test VM,
// idle; 1 to 1.6 s under the race detector) and is not undone when a client
// stops waiting: a try abandoned under load and sent again would cost it that
// work once more, each time.
const storedKeysAttempt = 10 * time.Second

// Window is the newest part of a bucket's history, as read by Newest (or
// NewestKeys) and Widen: the revisions from some point up to the last when it
// was read. It is not safe for concurrent use.
type Window struct {
	// Entries holds the value of each key last written in the window, oldest
	// first. Deleted keys are left out.
	Entries []Entry
	// Since is when the window begins: every key written at or after Since
	// (by the NATS server's clock), up to when the window was read, is in
	// Entries. (Of keys rewritten while it was read, those written faster
	// than Widen catches up may be missing: see Widen.) It is zero when the
	// window is the whole bucket.
	Since time.Time
	// All reports whether the window is the whole bucket.
	All bool
	// Total is the number of messages (keys, and delete markers) in the bucket.
	Total uint64

	kv          *KV
	filter      string      // NewestKeys: only keys matching filter, without values
	first, last uint64      // revisions read: first..last
	msgs        []storedMsg // every message read, by revision
}

// Newest reads the keys written within the bucket's newest n revisions, with
// one direct get per revision, pipelined. It costs a few microseconds per
// revision, whatever the number of keys before them (a consumer would first
// count every key in the bucket).
func (k *KV) Newest(ctx context.Context, n uint64) (*Window, error) {
	w := &Window{kv: k}
	if err := w.Widen(ctx, n); err != nil {
		return nil, err
	}
	return w, nil
}

// NewestKeys is Newest for the keys matching filter, without their values
// (Entry.Value is nil): the server skips the other revisions, so that reading
// costs little per revision but a few microseconds per key read, and starting
// costs a fraction of a microsecond per key matching filter in the bucket.
func (k *KV) NewestKeys(ctx context.Context, filter string, n uint64) (*Window, error) {
	w := &Window{kv: k, filter: filter}
	if err := w.Widen(ctx, n); err != nil {
		return nil, err
	}
	return w, nil
}

// Widen adds to the window the n revisions before it, and those written since
// it was read (where keys rewritten meanwhile have moved).
func (w *Window) Widen(ctx context.Context, n uint64) error {
	k := w.kv
	fail := func(err error) error { return fmt.Errorf("bus: read %d revisions of %s: %w", n, k.kv.Bucket(), err) }
	s, err := k.getStream(ctx)
	if err != nil {
		return fail(err)
	}
	info, err := streamInfo(ctx, s)
	if err != nil {
		return fail(err)
	}
	st := info.State
	if w.first == 0 { // new
		w.first, w.last = st.LastSeq+1, st.LastSeq
	}
	oldest := max(st.FirstSeq, 1)
	first := max(oldest, w.first-min(n, w.first))
	if w.filter != "" {
		// One pass from the new start to the end.
		if w.msgs, err = k.readFiltered(ctx, w.filter, first); err != nil {
			return fail(err)
		}
		w.first = first
	} else {
		if first < w.first {
			older, err := k.readSeqs(ctx, first, w.first-1)
			if err != nil {
				return fail(err)
			}
			w.msgs, w.first = append(w.msgs, older...), first
		}
		// Keys rewritten since the window was read (perhaps while it was) have
		// moved past its end: read what was written since, a few rounds if
		// writes go on. A round reads no more revisions than the window holds
		// (catchUpMin if fewer): writes faster than reads would otherwise make
		// each round longer than the last. The window then ends short of the
		// bucket's end, where its next Widen goes on.
		most := max(w.last+1-w.first, catchUpMin)
		for round := 0; round < 3; round++ {
			if info, err = streamInfo(ctx, s); err != nil {
				return fail(err)
			}
			if st = info.State; st.LastSeq <= w.last {
				break
			}
			to := min(st.LastSeq, w.last+most)
			newer, err := k.readSeqs(ctx, w.last+1, to)
			if err != nil {
				return fail(err)
			}
			w.msgs, w.last = append(w.msgs, newer...), to
		}
		slices.SortFunc(w.msgs, func(a, b storedMsg) int { return cmp.Compare(a.Revision, b.Revision) })
	}
	w.Total, w.All, w.Since = st.Msgs, w.first <= oldest, time.Time{}
	if !w.All {
		switch {
		case w.filter == "" && len(w.msgs) > 0:
			w.Since = w.msgs[0].Time
		default:
			if w.Since, err = k.timeAt(ctx, w.first); err != nil {
				return fail(err)
			}
		}
	}
	latest := make(map[string]uint64, len(w.msgs))
	for _, m := range w.msgs {
		latest[m.Key] = m.Revision
	}
	w.Entries = make([]Entry, 0, len(latest))
	for _, m := range w.msgs {
		if latest[m.Key] == m.Revision && !m.deleted {
			w.Entries = append(w.Entries, m.Entry)
		}
	}
	return nil
}

// catchUpMin is the fewest revisions a round of Widen's catching up may read.
const catchUpMin = 4096

// streamInfo returns the state of stream s, riding out a leader election
// (the leader answers: one that died answers nothing).
func streamInfo(ctx context.Context, s jetstream.Stream) (info *jetstream.StreamInfo, err error) {
	err = retry(ctx, func(ctx context.Context) error {
		info, err = s.Info(ctx)
		return err
	})
	return info, err
}

// storedMsg is one message of a bucket's stream.
type storedMsg struct {
	Entry
	deleted bool // a delete or purge marker
}

// readSeqs reads the bucket's messages with sequences from..to (some may be
// gone) by direct gets, keeping up to 512 requests in flight. Each request has
// a deadline of its own, so the read as a whole needs none: it keeps what it
// has read however long a server under load takes, and ends with ctx.
//
// A server under load may drop a direct get: requests still unanswered after
// a quiet spell (no answer at all for quietSpell) are sent again. On a
// cluster, after quietSpells spells in a row (no replica answers direct gets:
// followers catching up after a leader change stop serving them), they are
// read through the stream leader, each with retries of its own (leaderGets).
// A single server answers both alike, and a silent one is a busy one: each
// spell in a row lasts twice the last, up to maxQuietSpell, and the read
// fails after maxQuietSpells.
func (k *KV) readSeqs(ctx context.Context, from, to uint64) ([]storedMsg, error) {
	if to < from {
		return nil, nil
	}
	const inFlight = 512
	replies := make(chan *nats.Msg, 8*inFlight) // room for duplicate answers to re-sent requests
	inbox := k.b.nc.NewInbox() + "."
	sub, err := k.b.nc.ChanSubscribe(inbox+"*", replies)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	api := "$JS.API.DIRECT.GET." + k.streamName()
	prefix := k.subject("")
	// Each request has its own reply subject, inbox.<seq>, so every answer,
	// including a 404 without headers, says which sequence it is for.
	request := func(seq uint64) error {
		req := append(strconv.AppendUint([]byte(`{"seq":`), seq, 10), '}')
		return k.b.nc.PublishRequest(api, inbox+strconv.FormatUint(seq, 10), req)
	}
	out := make([]storedMsg, 0, to-from+1)
	outstanding := map[uint64]bool{}
	quiet := 0 // quiet spells in a row
	clustered := k.b.clustered()
	spell := func() time.Duration {
		if clustered {
			return quietSpell
		}
		return min(quietSpell<<quiet, maxQuietSpell)
	}
	next := from
	timer := time.NewTimer(quietSpell)
	defer timer.Stop()
	for next <= to || len(outstanding) > 0 {
		for next <= to && len(outstanding) < inFlight {
			if err := request(next); err != nil {
				return nil, err
			}
			outstanding[next] = true
			next++
		}
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-timer.C:
			quiet++
			switch {
			case quiet >= quietSpells && clustered:
				msgs, err := k.leaderGets(ctx, outstanding, prefix)
				if err != nil {
					return nil, err
				}
				out = append(out, msgs...)
				clear(outstanding)
				quiet = 0
			case quiet >= maxQuietSpells:
				return nil, fmt.Errorf("direct get: %d of %d revisions unanswered after %d tries", len(outstanding), to-from+1, quiet)
			default:
				for seq := range outstanding {
					if err := request(seq); err != nil {
						return nil, err
					}
				}
			}
			timer.Reset(spell())
			continue
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		quiet = 0
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(quietSpell)
		seq, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, inbox), 10, 64)
		if err != nil || !outstanding[seq] {
			continue // a duplicate answer to a re-sent request
		}
		if h := k.b.hooks; h != nil && h.directReply != nil {
			h.directReply(seq)
		}
		delete(outstanding, seq)
		switch status := m.Header.Get("Status"); status {
		case "":
		case "404": // removed
			continue
		default:
			return nil, fmt.Errorf("direct get: status %s %s (is allow_direct set on stream %s?)", status, m.Header.Get("Description"), k.streamName())
		}
		ts, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
		if err != nil {
			return nil, fmt.Errorf("direct get: time stamp: %w", err)
		}
		out = append(out, storedMsg{
			Entry:   Entry{Key: strings.TrimPrefix(m.Header.Get(jetstream.SubjectHeader), prefix), Value: m.Data, Revision: seq, Time: ts},
			deleted: m.Header.Get(kvOperationHdr) != "",
		})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Revision < out[b].Revision })
	return out, nil
}

// The quiet spells of readSeqs: a cluster's stream leader is asked after
// quietSpells of quietSpell; a single server's spells grow from quietSpell to
// maxQuietSpell, and it is given up on after maxQuietSpells of them (about
// 12 s without an answer).
const (
	quietSpell     = 250 * time.Millisecond
	maxQuietSpell  = 2 * time.Second
	quietSpells    = 4
	maxQuietSpells = 8
)

// leaderGets reads the given sequences through the stream leader (the
// regular message-get API), for when no replica answers direct gets. Each
// get is retried on its own (a leader being elected answers nothing).
func (k *KV) leaderGets(ctx context.Context, seqs map[uint64]bool, prefix string) ([]storedMsg, error) {
	var out []storedMsg
	for seq := range seqs {
		var m *leaderMsg
		err := retry(ctx, func(ctx context.Context) (err error) {
			m, err = k.leaderGet(ctx, seq)
			return err
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, storedMsg{
			Entry:   Entry{Key: strings.TrimPrefix(m.Subject, prefix), Value: m.Data, Revision: m.Seq, Time: m.Time},
			deleted: m.Header.Get(kvOperationHdr) != "",
		})
	}
	return out, nil
}

// leaderGet reads the bucket's message at seq through its stream's leader
// (see Bus.leaderGet).
func (k *KV) leaderGet(ctx context.Context, seq uint64) (*leaderMsg, error) {
	return k.b.leaderGet(ctx, k.streamName(), leaderReq{Seq: seq})
}

// readFiltered reads, without values, the bucket's messages from sequence from
// on whose keys match filter, with ephemeral consumers. (Unlike readSeqs it
// pays a count of the keys matching filter, when a consumer is created.)
//
// A consumer that falls silent (readSilence without a message it owes) or
// whose messages go missing (a gap in its sequence: it does not wait for
// acknowledgements) is replaced by one that starts after the last message
// read, keeping what was read; maxStalls replacements in a row that read
// nothing fail the read.
func (k *KV) readFiltered(ctx context.Context, filter string, from uint64) ([]storedMsg, error) {
	var out []storedMsg
	for stalls := 0; ; {
		read := len(out)
		done, err := k.readFilteredFrom(ctx, filter, from, &out)
		switch {
		case err != nil:
			return nil, err
		case done:
			return out, nil
		case len(out) > read:
			stalls, from = 0, out[len(out)-1].Revision+1
		default:
			if stalls++; stalls >= maxStalls {
				return nil, fmt.Errorf("read %s: %d consumers in a row fell silent", filter, stalls)
			}
		}
	}
}

// readSilence is how long readFiltered waits for a message its consumer owes
// it before it replaces the consumer; maxStalls bounds the replacements in a
// row that read nothing.
const (
	readSilence = time.Second
	maxStalls   = 3
)

// readFilteredFrom reads with one consumer, appending to out, and reports
// whether it read to the end; it returns done false and no error when the
// consumer fell silent or lost messages (see readFiltered). The consumer is
// deleted in the background, never on the answer's path: its inactivity
// threshold removes one whose deletion failed.
func (k *KV) readFilteredFrom(ctx context.Context, filter string, from uint64, out *[]storedMsg) (done bool, err error) {
	// The name is the reader's, so that a consumer whose creation was
	// answered too late is deleted all the same, and a create sent again
	// makes no second consumer.
	name := "drover_read_" + strings.TrimPrefix(nats.NewInbox(), nats.InboxPrefix)
	defer k.deleteConsumerLater(name)
	var pending uint64
	err = retry(ctx, func(ctx context.Context) error {
		cons, err := k.b.js.CreateConsumer(ctx, k.streamName(), jetstream.ConsumerConfig{
			Name:              name,
			DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:       from,
			FilterSubject:     k.subject(filter),
			HeadersOnly:       true,
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: time.Minute,
			MemoryStorage:     true,
			Replicas:          1,
		})
		if err == nil {
			pending = cons.CachedInfo().NumPending
		}
		return err
	})
	if err != nil || pending == 0 {
		return err == nil, err
	}
	const maxBatch = 4096
	msgs := make(chan *nats.Msg, maxBatch+16)
	inbox := k.b.nc.NewInbox()
	sub, err := k.b.nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return false, err
	}
	defer sub.Unsubscribe()
	api := "$JS.API.CONSUMER.MSG.NEXT." + k.streamName() + "." + name
	prefix := k.subject("")
	silence := time.NewTimer(readSilence)
	defer silence.Stop()
	var delivered uint64 // the consumer's sequence of the last message read
	for pending > 0 {
		// A no-wait pull: the consumer sends what it has, up to batch, and
		// ends with a 404 at the end of the stream (messages counted as
		// pending may have been removed since).
		batch := min(pending, maxBatch)
		if err := k.b.nc.PublishRequest(api, inbox, fmt.Appendf(nil, `{"batch":%d,"no_wait":true}`, batch)); err != nil {
			return false, err
		}
		for got := uint64(0); got < batch; {
			if !silence.Stop() {
				select {
				case <-silence.C:
				default:
				}
			}
			silence.Reset(readSilence)
			var m *nats.Msg
			select {
			case m = <-msgs:
			case <-silence.C:
				return false, nil
			case <-ctx.Done():
				return false, ctx.Err()
			}
			if h := k.b.hooks; h != nil && h.lose != nil && h.lose(m) {
				continue
			}
			if len(m.Data) == 0 && m.Header.Get("Status") != "" {
				switch status := m.Header.Get("Status"); status {
				case "404":
					return true, nil
				case "100": // a heartbeat
					continue
				case "408", "409", "503": // the consumer is gone, or its server
					return false, nil
				default:
					return false, fmt.Errorf("read %s: status %s %s", filter, status, m.Header.Get("Description"))
				}
			}
			md, err := m.Metadata()
			if err != nil {
				return false, fmt.Errorf("read %s: %w", filter, err)
			}
			if md.Sequence.Consumer != delivered+1 {
				return false, nil // messages went missing
			}
			delivered, pending = md.Sequence.Consumer, md.NumPending
			*out = append(*out, storedMsg{
				Entry:   Entry{Key: strings.TrimPrefix(m.Subject, prefix), Revision: md.Sequence.Stream, Time: md.Timestamp},
				deleted: m.Header.Get(kvOperationHdr) != "",
			})
			got++
		}
	}
	return true, nil
}

// deleteConsumerLater deletes the bucket stream's consumer name in the
// background, with a deadline of its own.
func (k *KV) deleteConsumerLater(name string) {
	go func() {
		if h := k.b.hooks; h != nil && h.deleteConsumer != nil {
			h.deleteConsumer(name)
		}
		if k.b.nc.IsClosed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		k.b.js.DeleteConsumer(ctx, k.streamName(), name)
	}()
}

// timeAt returns when the first message from sequence seq on was written, or
// now if there is none.
func (k *KV) timeAt(ctx context.Context, seq uint64) (time.Time, error) {
	req := fmt.Sprintf(`{"seq":%d,"next_by_subj":%q}`, seq, k.subject(">"))
	var m *nats.Msg
	err := retry(ctx, func(ctx context.Context) (err error) {
		m, err = k.b.request(ctx, "$JS.API.DIRECT.GET."+k.streamName(), []byte(req))
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("direct get: %w", err)
	}
	switch status := m.Header.Get("Status"); status {
	case "":
	case "404":
		return time.Now(), nil
	default:
		return time.Time{}, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
	}
	return time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
}

// kvOperationHdr marks delete and purge markers in a bucket's stream.
const kvOperationHdr = "KV-Operation"

// request sends a request and waits for its answer until ctx ends.
func (b *Bus) request(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	if h := b.hooks; h != nil && h.request != nil {
		if err := h.request(ctx, subject); err != nil {
			return nil, err
		}
	}
	return b.nc.RequestWithContext(ctx, subject, data)
}
