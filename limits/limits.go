package limits

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/meter"
)

// Timings of shared limiters.
const (
	// limitOpTimeout bounds one operation on the record. A take that cannot
	// reach the record fails closed: the step waits and tries again.
	limitOpTimeout = 2 * time.Second
	// limitUnreachableWait is how long a take that could not reach the
	// record tells the step to wait before trying again.
	limitUnreachableWait = 100 * time.Millisecond
	// limitFreeFresh is how old the cached record may be when a reading asks
	// how many units are free.
	limitFreeFresh = 500 * time.Millisecond
	// limitHoldGrace is how long a pool holding of a node this node does not
	// see heartbeating survives: long enough for a node that has just started
	// to be seen (twice cluster.NodeTimeout).
	limitHoldGrace = 5 * time.Second
	// limitCASAttempts bounds the compare-and-set loop under contention.
	limitCASAttempts = 16
)

// limitState is the record of one shared resource.
type limitState struct {
	// BucketLevel is a token bucket's level and when it was last refilled.
	meter.BucketLevel
	// Held is a pool's units, by the node holding them.
	Held map[string]holding `json:"held,omitempty"`
}

// holding is what one node holds of a shared pool.
type holding struct {
	Units int    `json:"units"`
	Boot  uint64 `json:"boot"` // the holder's incarnation: a restarted node's old units are void
	Op    uint64 `json:"op"`   // the holder's last write, to tell whether an unanswered write landed
	At    int64  `json:"at"`   // unix ns of that write
}

func (s limitState) clone() limitState {
	out := s
	if s.Held != nil {
		out.Held = make(map[string]holding, len(s.Held))
		for k, v := range s.Held {
			out.Held[k] = v
		}
	}
	return out
}

// sharedLimiter implements meter.Limiter for one shared resource.
type sharedLimiter struct {
	opts *Options
	kv   *bus.KV
	key  string
	spec meter.ResourceSpec
	boot uint64

	mu      sync.Mutex // serialises this node's reads and writes of the record, and guards the fields below
	state   limitState
	rev     uint64 // revision of state; 0 when the record does not exist yet
	fetched time.Time
	op      uint64

	// snap is a copy of state for Free, which must not wait for mu (held
	// across network round trips).
	snapMu     sync.Mutex
	snap       limitState
	snapAt     time.Time
	refreshing atomic.Bool

	warned atomic.Int64 // unix ns of the last warning
}

// Options configures the shared limiters of one node.
type Options struct {
	// Bus holds the limits bucket.
	Bus *bus.Bus
	// Node is this node's name: its pool holdings are recorded under it.
	Node string
	// IsLive reports whether a node still heartbeats; units held by a node
	// that does not are freed after a grace period.
	IsLive func(node string) bool
	// Context bounds every operation on the records; it ends when the node
	// stops.
	Context context.Context
	// Logger receives warnings when a record cannot be reached (default: none).
	Logger *zerolog.Logger
}

// New returns the constructor of this node's shared limiters (see
// meter.ResourcesOptions.Shared): each resource's limiter is backed by one
// record of the limits bucket, or nil when the bus has no limits bucket.
func New(opts Options) func(meter.ResourceSpec) meter.Limiter {
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	if opts.Logger == nil {
		nop := zerolog.Nop()
		opts.Logger = &nop
	}
	return func(spec meter.ResourceSpec) meter.Limiter {
		kv := opts.Bus.Bucket(bus.LimitsBucket)
		if kv == nil {
			return nil
		}
		return &sharedLimiter{opts: &opts, kv: kv, key: recordKey(spec), spec: spec, boot: nonce()}
	}
}

// recordKey is the key of a resource's record: cluster.<name>, or
// group.<group>.<name>.
func recordKey(spec meter.ResourceSpec) string {
	if g := spec.Scope.Group(); g != "" {
		return "group." + g + "." + spec.Name
	}
	return "cluster." + spec.Name
}

var _ meter.Limiter = (*sharedLimiter)(nil)

// Take implements meter.Limiter.
func (l *sharedLimiter) Take(amount float64, now time.Time) (bool, time.Duration) {
	var wait time.Duration
	var ok bool
	err := l.change(now, func(s *limitState) bool {
		if l.spec.Kind == meter.KindPool {
			units := meter.PoolUnits(amount)
			if units > l.spec.Size {
				ok, wait = false, -1
				return false
			}
			if l.poolUsed(s, now)+units > l.spec.Size {
				ok, wait = false, 0
				return false
			}
			l.hold(s, units, now)
			ok = true
			return true
		}
		ok, wait = s.Take(amount, l.spec.Rate, l.spec.Burst, now)
		return ok
	})
	if err != nil {
		l.warn(err, "take")
		return false, limitUnreachableWait
	}
	return ok, wait
}

// Put implements meter.Limiter.
func (l *sharedLimiter) Put(amount float64, now time.Time) {
	err := l.change(now, func(s *limitState) bool {
		if l.spec.Kind == meter.KindPool {
			l.hold(s, -meter.PoolUnits(amount), now)
			return true
		}
		s.Put(amount, l.spec.Rate, l.spec.Burst, now)
		return true
	})
	if err != nil {
		// The units stay taken until this node is seen lost or restarts:
		// safe (it under-uses the limit), never over it.
		l.warn(err, "release")
	}
}

// Free implements meter.Limiter: the free units in this node's latest copy
// of the record. It never waits on the network (the heartbeat calls it): a
// copy older than limitFreeFresh is refreshed in the background, for the
// next call.
func (l *sharedLimiter) Free(now time.Time) float64 {
	l.snapMu.Lock()
	s, fetched := l.snap.clone(), l.snapAt
	l.snapMu.Unlock()
	if time.Since(fetched) > limitFreeFresh && l.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer l.refreshing.Store(false)
			l.mu.Lock()
			defer l.mu.Unlock()
			if err := l.fetch(); err != nil {
				l.warn(err, "read")
			}
		}()
	}
	if fetched.IsZero() {
		return l.spec.Capacity() // nothing read yet: an untouched record is full
	}
	if l.spec.Kind == meter.KindPool {
		return float64(max(l.spec.Size-l.poolUsed(&s, now), 0))
	}
	s.Refill(l.spec.Rate, l.spec.Burst, now)
	return s.Tokens
}

// keep records the state read or written at revision rev as this node's copy.
func (l *sharedLimiter) keep(s limitState, rev uint64) {
	l.state, l.rev, l.fetched = s, rev, time.Now()
	l.snapMu.Lock()
	l.snap, l.snapAt = s.clone(), l.fetched
	l.snapMu.Unlock()
}

// change applies fn to the record by compare-and-set, starting from this
// node's copy and reading the record again on conflict. fn reports whether
// it changed the state; a refusal (false) is trusted only on a fresh read,
// so a stale copy never denies units another node has given back.
func (l *sharedLimiter) change(now time.Time, fn func(*limitState) bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fresh := false
	for attempt := 0; attempt < limitCASAttempts; attempt++ {
		if l.fetched.IsZero() {
			if err := l.fetch(); err != nil {
				return err
			}
			fresh = true
		}
		s := l.state.clone()
		if !fn(&s) {
			if fresh {
				return nil
			}
			if err := l.fetch(); err != nil {
				return err
			}
			fresh = true
			continue
		}
		l.op++
		if s.Held != nil {
			if h, ok := s.Held[l.opts.Node]; ok {
				h.Op = l.op
				s.Held[l.opts.Node] = h
			}
		}
		data, _ := json.Marshal(s)
		rev, err := l.write(data)
		switch {
		case err == nil:
			l.keep(s, rev)
			return nil
		case errors.Is(err, bus.ErrConflict) || errors.Is(err, bus.ErrExists):
			if ferr := l.fetch(); ferr != nil {
				return ferr
			}
			if h, ok := l.state.Held[l.opts.Node]; ok && h.Op == l.op && h.Boot == l.boot {
				return nil // the write landed; only its answer was lost
			}
			fresh = true
		default:
			l.fetched = time.Time{}
			return err
		}
	}
	return errors.New("limits: shared resource " + l.spec.Name + ": too much contention, try again")
}

func (l *sharedLimiter) write(data []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(l.opts.Context, limitOpTimeout)
	defer cancel()
	if l.rev == 0 {
		return l.kv.Create(ctx, l.key, data)
	}
	return l.kv.Update(ctx, l.key, data, l.rev)
}

// fetch reads the record into this node's copy; a missing record is a full
// bucket or an empty pool.
func (l *sharedLimiter) fetch() error {
	ctx, cancel := context.WithTimeout(l.opts.Context, limitOpTimeout)
	defer cancel()
	data, rev, err := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(err, bus.ErrNotFound):
		l.keep(limitState{BucketLevel: meter.BucketLevel{Tokens: l.spec.Burst, At: time.Now().UnixNano()}}, 0)
	case err != nil:
		return err
	default:
		var s limitState
		if err := json.Unmarshal(data, &s); err != nil {
			return errors.New("limits: shared resource " + l.spec.Name + ": unreadable record: " + err.Error())
		}
		l.keep(s, rev)
	}
	return nil
}

// poolUsed sums the units held, dropping holdings that are void: this node's
// from an earlier incarnation, and those of nodes no longer heartbeating.
func (l *sharedLimiter) poolUsed(s *limitState, now time.Time) int {
	used := 0
	for node, h := range s.Held {
		switch {
		case node == l.opts.Node && h.Boot != l.boot:
			delete(s.Held, node)
		case node != l.opts.Node && !l.opts.IsLive(node) && now.Sub(time.Unix(0, h.At)) > limitHoldGrace:
			delete(s.Held, node)
		default:
			used += h.Units
		}
	}
	return used
}

// hold adds units (negative to release) to this node's holding.
func (l *sharedLimiter) hold(s *limitState, units int, now time.Time) {
	if s.Held == nil {
		s.Held = map[string]holding{}
	}
	h := s.Held[l.opts.Node]
	if h.Boot != l.boot {
		h = holding{Boot: l.boot}
	}
	h.Units = max(h.Units+units, 0)
	h.At = now.UnixNano()
	s.Held[l.opts.Node] = h
}

// warn logs a failure to reach the record, at most every 10 s.
func (l *sharedLimiter) warn(err error, what string) {
	now := time.Now().UnixNano()
	last := l.warned.Load()
	if l.opts.Context.Err() != nil || now-last < int64(10*time.Second) || !l.warned.CompareAndSwap(last, now) {
		return
	}
	l.opts.Logger.Warn().Err(err).Str("resource", l.spec.Name).Str("scope", string(l.spec.Scope)).
		Msg("shared resource " + what + " failed; steps that need it wait (retry in " + strconv.Itoa(int(limitUnreachableWait/time.Millisecond)) + " ms)")
}

// nonce returns a random number, telling this process's holdings from an
// earlier incarnation's.
func nonce() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
