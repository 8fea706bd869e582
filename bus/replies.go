package bus

import (
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
)

// replies routes the answers of requests answered by several messages (a
// direct get of a run's entries) through one subscription on the bus's
// connection, each request under a reply subject of its own below it, as
// nats.go does for requests answered once. Subscribing for each request
// would cost the server a subscription change each time, and each change
// empties the server's cache of subject matches, which every publisher on
// the connection then rebuilds.
type replies struct {
	prefix string // <inbox>., the subscription's subject without its *

	once sync.Once
	sub  *nats.Subscription
	err  error

	mu      sync.Mutex
	next    uint64
	waiting map[string]*replyWaiter
}

// replyWaiter receives the answers to one request.
type replyWaiter struct {
	r       *replies
	token   string
	subject string // where the answers are to be sent
	msgs    chan *nats.Msg
	done    chan struct{}
}

// wait registers a request's reply subject; close the waiter once its
// answers are read (or no longer wanted).
func (r *replies) wait(nc *nats.Conn) (*replyWaiter, error) {
	r.once.Do(func() {
		r.prefix = nc.NewInbox() + "."
		r.waiting = map[string]*replyWaiter{}
		r.sub, r.err = nc.Subscribe(r.prefix+"*", r.deliver)
	})
	if r.err != nil {
		return nil, r.err
	}
	r.mu.Lock()
	r.next++
	token := strconv.FormatUint(r.next, 36)
	w := &replyWaiter{r: r, token: token, subject: r.prefix + token, msgs: make(chan *nats.Msg, 64), done: make(chan struct{})}
	r.waiting[token] = w
	r.mu.Unlock()
	return w, nil
}

// deliver hands an answer to its waiter, in the order the server sent them
// (one subscription delivers one message at a time). An answer for a waiter
// that has closed is dropped.
func (r *replies) deliver(m *nats.Msg) {
	r.mu.Lock()
	w := r.waiting[m.Subject[len(r.prefix):]]
	r.mu.Unlock()
	if w == nil {
		return
	}
	select {
	case w.msgs <- m:
	case <-w.done:
	}
}

// close stops w's answers.
func (w *replyWaiter) close() {
	w.r.mu.Lock()
	delete(w.r.waiting, w.token)
	w.r.mu.Unlock()
	close(w.done)
}
