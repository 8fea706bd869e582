package bus

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Group commit. Under SyncAlways, nats-server syncs each message to disk on
// its own: concurrent writers do not share an fsync, and 64 concurrent runs
// write no faster than one fsync at a time. An embedded server that is not
// clustered therefore runs with the interval policy, and the bus syncs the
// data directory's filesystem itself, once for every group of writes: a
// writer waits, after JetStream's acknowledgement (the message is in the
// server's files, in the operating system's page cache), for a sync that
// started after that acknowledgement. One sync covers every write
// acknowledged before it starts.
//
// Other processes writing through this server's client listener (a Bus
// opened with a URL) ask it for the same sync with a request on SyncSubject.
// A clustered server syncs itself (SyncAlways: its Raft log is synced before
// each server answers, and the log groups concurrent proposals).

// SyncSubject is where an embedded server under the always policy answers
// sync requests: the reply (empty, or an error text) comes once everything
// acknowledged before the request is on disk.
const SyncSubject = "drover.sync"

// groupSync makes one filesystem sync cover many writers.
type groupSync struct {
	dir  *os.File // a directory on the filesystem to sync
	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	next   *syncRound // the round a new waiter joins; it starts after it joins
	rounds int        // syncs made, for tests
}

// syncRound is one sync: done is closed when it has finished, with err.
type syncRound struct {
	done chan struct{}
	err  error
}

// newGroupSync starts syncing the filesystem holding dir on demand, or
// returns nil, nil where syncfs(2) is not available.
func newGroupSync(dir string) (*groupSync, error) {
	if !syncfsSupported {
		return nil, nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("bus: open %s to sync it: %w", dir, err)
	}
	g := &groupSync{dir: f, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		next: &syncRound{done: make(chan struct{})}}
	go g.run()
	return g, nil
}

// wait returns once a sync that started after wait was called has finished:
// everything acknowledged before the call is then on disk.
func (g *groupSync) wait(ctx context.Context) error {
	return g.waitRound(ctx, g.mark())
}

// mark returns the round that has not started yet: a sync that starts after
// this call. Waiting for it (waitRound) later costs no sync of its own if
// another waiter joins the same round meanwhile, and nothing if it is done.
func (g *groupSync) mark() *syncRound {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.next
}

// waitRound returns once round r (mark) has finished.
func (g *groupSync) waitRound(ctx context.Context, r *syncRound) error {
	select {
	case <-r.done:
		return r.err
	default:
	}
	select {
	case g.kick <- struct{}{}:
	default: // a round is already asked for; it will take r
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *groupSync) run() {
	defer close(g.done)
	for {
		select {
		case <-g.kick:
			g.round()
		case <-g.stop:
			g.round() // the last waiters, after the server's shutdown
			return
		}
	}
}

// round syncs once for every waiter that joined the current round.
func (g *groupSync) round() {
	g.mu.Lock()
	r := g.next
	g.next = &syncRound{done: make(chan struct{})}
	g.rounds++
	g.mu.Unlock()
	if err := syncfs(g.dir); err != nil {
		r.err = fmt.Errorf("bus: sync %s to disk: %w", g.dir.Name(), err)
	}
	close(r.done)
}

// close syncs a last time and stops: later waits fail with ErrClosed.
func (g *groupSync) close() {
	close(g.stop)
	<-g.done
	g.dir.Close()
	g.mu.Lock()
	g.next.err = fmt.Errorf("%w: sync to disk", ErrClosed)
	close(g.next.done)
	g.mu.Unlock()
}

// serve answers sync requests from other processes on nc.
func (g *groupSync) serve(nc *nats.Conn) error {
	_, err := nc.Subscribe(SyncSubject, func(m *nats.Msg) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var reply []byte
		if err := g.wait(ctx); err != nil {
			reply = []byte(err.Error())
		}
		m.Respond(reply)
	})
	return err
}

// synced returns once what this bus has had acknowledged is on disk as its
// sync policy requires: at once under the interval policy or on a server
// that syncs itself; after a group sync of the embedded server's filesystem,
// or of the remote Drover server's (SyncSubject), under the always policy.
// Writes whose acknowledgement a caller relies on call it before returning.
func (b *Bus) synced(ctx context.Context) error {
	switch {
	case b.group != nil:
		return b.group.wait(ctx)
	case b.remoteSync:
		reply, err := b.nc.RequestWithContext(ctx, SyncSubject, nil)
		if err != nil {
			return fmt.Errorf("bus: sync the server's store to disk: %w", err)
		}
		if len(reply.Data) > 0 {
			return fmt.Errorf("bus: the server could not sync its store to disk: %s", reply.Data)
		}
	}
	return nil
}

// syncedLater is synced split in two: called once a write is acknowledged, it
// returns the wait for that write to be on disk. Writes acknowledged one
// after another, each marked as it is, and waited for together afterwards,
// share one sync (the round each marked, or one that started later) rather
// than paying one each, as waiting for each in turn does.
func (b *Bus) syncedLater() func(context.Context) error {
	if b.group != nil {
		r := b.group.mark()
		return func(ctx context.Context) error { return b.group.waitRound(ctx, r) }
	}
	return b.synced
}

// probeRemoteSync asks a server reached by URL whether it is a Drover
// embedded server that syncs on request (SyncSubject); a NATS server answers
// no responders, and syncs as its own configuration says.
func (b *Bus) probeRemoteSync() {
	if !b.opts.Sync.Always {
		return
	}
	reply, err := b.nc.Request(SyncSubject, nil, 2*time.Second)
	b.remoteSync = err == nil && len(reply.Data) == 0
}
