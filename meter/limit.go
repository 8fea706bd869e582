package meter

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// A Limiter is one instance of a custom resource: a node's own TokenBucket or
// Pool, or a shared one that the engine backs with the cluster's store for
// cluster- and group-scoped resources. Implementations are safe for
// concurrent use and read no clock of their own: now is passed in.
type Limiter interface {
	// Take takes n units if they are free. Otherwise it takes nothing and
	// returns how long until they might be: exact for a bucket, 0 when
	// only a release can free them (a pool), negative when they never can
	// (n exceeds the capacity).
	Take(n float64, now time.Time) (ok bool, wait time.Duration)
	// Put gives n units back: a pool's units when a step ends, or units
	// taken for a step that will not run.
	Put(n float64, now time.Time)
	// Free returns the units that are free now.
	Free(now time.Time) float64
}

var (
	_ Limiter = (*TokenBucket)(nil)
	_ Limiter = (*Pool)(nil)
)

// eps absorbs floating-point error so that waiting exactly the returned time
// always succeeds.
const eps = 1e-9

// A BucketLevel is the state of a token bucket: Tokens in it as of At (unix
// nanoseconds). It holds the bucket arithmetic that TokenBucket and the
// cluster-wide buckets of package limits share; the rate (tokens per second)
// and burst are passed in, so a level stored elsewhere (a shared record)
// follows the limits of whoever reads it. The zero value is a full bucket
// that has never been used. It is not safe for concurrent use.
type BucketLevel struct {
	Tokens float64 `json:"tokens,omitempty"`
	At     int64   `json:"at,omitempty"`
}

// Refill adds the tokens earned since At, up to burst; a clock that goes back
// earns none.
func (l *BucketLevel) Refill(rate, burst float64, now time.Time) {
	t := now.UnixNano()
	if l.At == 0 {
		l.Tokens, l.At = burst, t
		return
	}
	if dt := t - l.At; dt > 0 {
		l.Tokens = math.Min(burst, l.Tokens+rate*float64(dt)/1e9)
		l.At = t
	}
	l.Tokens = math.Min(l.Tokens, burst)
}

// Take takes n tokens if the bucket holds them. Otherwise it takes none and
// returns how long until it will; the wait is negative when it never will
// (n exceeds the burst, or the rate is zero).
func (l *BucketLevel) Take(n, rate, burst float64, now time.Time) (ok bool, wait time.Duration) {
	l.Refill(rate, burst, now)
	if l.Tokens+eps >= n {
		l.Tokens -= n
		return true, 0
	}
	if n > burst+eps || rate <= 0 {
		return false, -1
	}
	secs := (n - l.Tokens) / rate
	return false, time.Duration(math.Ceil(secs*1e9)) + 1
}

// Put returns n tokens taken for work that will not happen, up to the burst.
func (l *BucketLevel) Put(n, rate, burst float64, now time.Time) {
	l.Refill(rate, burst, now)
	l.Tokens = math.Min(burst, l.Tokens+n)
}

// A TokenBucket is a rate limit: tokens refill at a rate up to a burst, and
// each unit of work takes one. It reads no clock: every call passes now, so
// a simulator can drive it in virtual time. It is safe for concurrent use.
type TokenBucket struct {
	mu    sync.Mutex
	rate  float64 // tokens per second
	burst float64
	level BucketLevel
}

// NewTokenBucket returns a full bucket refilling at rate tokens per second
// up to burst tokens.
func NewTokenBucket(rate, burst float64, now time.Time) *TokenBucket {
	b := &TokenBucket{rate: math.Max(rate, 0), burst: math.Max(burst, 0)}
	b.level = BucketLevel{Tokens: b.burst, At: now.UnixNano()}
	return b
}

// Take takes n tokens if the bucket holds them. Otherwise it takes none and
// returns how long until it will; the wait is negative when it never will
// (n exceeds the burst, or the rate is zero).
func (b *TokenBucket) Take(n float64, now time.Time) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.level.Take(n, b.rate, b.burst, now)
}

// Put returns n tokens taken for work that will not happen, up to the burst.
func (b *TokenBucket) Put(n float64, now time.Time) {
	b.mu.Lock()
	b.level.Put(n, b.rate, b.burst, now)
	b.mu.Unlock()
}

// Free returns the tokens in the bucket now.
func (b *TokenBucket) Free(now time.Time) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.level.Refill(b.rate, b.burst, now)
	return b.level.Tokens
}

// Limit returns the bucket's rate (tokens per second) and burst.
func (b *TokenBucket) Limit() (rate, burst float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate, b.burst
}

// SetLimit changes the rate and burst at runtime (a limit lowered by the
// provider, a configuration reload). Tokens above the new burst are dropped.
func (b *TokenBucket) SetLimit(rate, burst float64, now time.Time) {
	b.mu.Lock()
	b.level.Refill(b.rate, b.burst, now)
	b.rate, b.burst = math.Max(rate, 0), math.Max(burst, 0)
	b.level.Tokens = math.Min(b.level.Tokens, b.burst)
	b.mu.Unlock()
}

// A Pool is a concurrency limit of Size units, such as database connections:
// a step holds its units while it runs. It is safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	size    int
	used    int
	changed chan struct{} // closed and replaced when units are released
}

// NewPool returns a pool of size free units.
func NewPool(size int) *Pool { return &Pool{size: max(size, 0)} }

// TryAcquire takes n units if they are free, without blocking.
func (p *Pool) TryAcquire(n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used+n > p.size {
		return false
	}
	p.used += n
	return true
}

// Acquire takes n units, blocking until they are free or ctx is done. It
// fails at once, wrapping ErrExceedsCapacity, when n exceeds the pool's size.
func (p *Pool) Acquire(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		if n > p.size {
			size := p.size
			p.mu.Unlock()
			return fmt.Errorf("%w: %d units demanded from a pool of %d", ErrExceedsCapacity, n, size)
		}
		if p.used+n <= p.size {
			p.used += n
			p.mu.Unlock()
			return nil
		}
		ch := p.changedLocked()
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Pool) changedLocked() chan struct{} {
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.changed
}

// Release gives back n units.
func (p *Pool) Release(n int) {
	p.mu.Lock()
	p.used = max(p.used-n, 0)
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
	p.mu.Unlock()
}

// Available returns the number of free units.
func (p *Pool) Available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(p.size-p.used, 0)
}

// Size returns the pool's number of units.
func (p *Pool) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size
}

// Resize changes the pool's size at runtime; units held beyond a smaller
// size stay held until released.
func (p *Pool) Resize(size int) {
	p.mu.Lock()
	p.size = max(size, 0)
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
	p.mu.Unlock()
}

// PoolUnits rounds a demand up to the whole units a pool gives.
func PoolUnits(n float64) int { return int(math.Ceil(n - eps)) }

// Take implements Limiter: TryAcquire of n rounded up to whole units.
func (p *Pool) Take(n float64, _ time.Time) (ok bool, wait time.Duration) {
	u := PoolUnits(n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used+u <= p.size {
		p.used += u
		return true, 0
	}
	if u > p.size {
		return false, -1
	}
	return false, 0
}

// Put implements Limiter: Release of n rounded up to whole units.
func (p *Pool) Put(n float64, _ time.Time) { p.Release(PoolUnits(n)) }

// Free implements Limiter: the free units.
func (p *Pool) Free(time.Time) float64 { return float64(p.Available()) }
