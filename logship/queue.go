package logship

import "sync"

// queue holds one destination's lines until they are shipped: a ring
// bounded in lines and bytes. Write adds at its tail; the destination's
// goroutine reads a batch from its head and removes the batch only once
// every line of it is settled (shipped, failed), so the lines in flight
// count against the bounds too.
type queue struct {
	wake chan struct{} // a line came (capacity 1: one wake-up pending at most)

	mu       sync.Mutex
	ring     [][]byte
	head, n  int
	bytes    int
	maxBytes int
	wakeAt   int  // besides the first line, the count that wakes the goroutine
	closed   bool // Close began: new lines are dropped

	shipped, dropped, failed uint64
	stopped                  int // lines of a batch Close stopped, counted dropped
}

func newQueue(lines, maxBytes, wakeAt int) *queue {
	return &queue{wake: make(chan struct{}, 1), ring: make([][]byte, lines), maxBytes: maxBytes, wakeAt: wakeAt}
}

// add adds p, copied unless owned, and returns the line it holds (the copy,
// to share with the other queues), or nil if it dropped p: the queue is
// full or closed.
func (q *queue) add(p []byte, owned bool) []byte {
	q.mu.Lock()
	if q.closed || q.n == len(q.ring) || q.bytes+len(p) > q.maxBytes {
		q.dropped++
		q.mu.Unlock()
		return nil
	}
	if !owned {
		p = append([]byte(nil), p...)
	}
	q.ring[(q.head+q.n)%len(q.ring)] = p
	q.n++
	q.bytes += len(p)
	wake := q.n == 1 || q.n == q.wakeAt
	q.mu.Unlock()
	if wake {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return p
}

// len returns how many lines the queue holds.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// peek appends to dst the lines at the head, up to maxLines of them and
// maxBytes (at least one line if there is one), without removing them.
func (q *queue) peek(dst [][]byte, maxLines, maxBytes int) [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	size := 0
	for i := 0; i < q.n && i < maxLines; i++ {
		line := q.ring[(q.head+i)%len(q.ring)]
		if i > 0 && size+len(line) > maxBytes {
			break
		}
		size += len(line)
		dst = append(dst, line)
	}
	return dst
}

// remove removes the k lines at the head, shipped of them shipped and
// failed failed; the others were not shipped (Close stopped them).
func (q *queue) remove(k, shipped, failed int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range k {
		q.bytes -= len(q.ring[q.head])
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
	}
	q.n -= k
	q.shipped += uint64(shipped)
	q.failed += uint64(failed)
	q.dropped += uint64(k - shipped - failed)
	q.stopped += k - shipped - failed
}

// close makes the queue drop new lines.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// abandon removes every line, counting them dropped, and returns how many
// lines were not shipped because Close stopped them.
func (q *queue) abandon() int {
	q.remove(q.len(), 0, 0)
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.stopped
	q.stopped = 0
	return n
}

// counts returns the queue's counters.
func (q *queue) counts() (queued int, shipped, dropped, failed uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.shipped, q.dropped, q.failed
}
