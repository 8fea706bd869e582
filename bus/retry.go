package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Writes ride out a JetStream leader election (a replicated stream whose
// leader's server died answers no one for a few seconds) by retrying for up to
// electionWait. Every retried write is idempotent: journal entries and step
// envelopes carry message ids, and a KV put or delete of the same value twice
// leaves the same state.
const (
	// asyncAckTimeout bounds the wait for an asynchronous publish's
	// acknowledgement, which is lost if the stream's leader dies with it;
	// Pending then publishes again (see Pending.Wait).
	asyncAckTimeout = 5 * time.Second
	electionWait    = 20 * time.Second
	retryEvery      = 100 * time.Millisecond
)

// pubRetry are the publish options that retry "no responders" (no stream
// leader yet) for about electionWait, or until the context ends.
var pubRetry = []jetstream.PublishOpt{jetstream.WithRetryAttempts(int(electionWait / retryEvery)), jetstream.WithRetryWait(retryEvery)}

// asyncRetry bounds the retries of asynchronous publishes to about electionWait.
var asyncRetry = []jetstream.PublishOpt{jetstream.WithRetryAttempts(int(electionWait / retryEvery)), jetstream.WithRetryWait(retryEvery)}

// transient reports whether err is worth retrying: nobody answered, which is
// what a stream without a leader looks like.
func transient(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// bounded returns ctx limited to electionWait, unless it ends sooner.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < electionWait {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, electionWait)
}

// retry calls op until it succeeds, fails with a non-transient error, or
// electionWait (or ctx) ends. Each try gets a short deadline of its own,
// tryTimeout: op should be one request, not a read of many, which a server
// under load may take longer than that to answer whole.
func retry(ctx context.Context, op func(ctx context.Context) error) error {
	return retryEach(ctx, tryTimeout, op)
}

// tryTimeout is the deadline of each try of retry (a variable for tests).
var tryTimeout = 2 * time.Second

// retryEach is retry with attempts of the given length. The first try runs on
// the caller's context, with no extra timer, when that ends within an attempt
// anyway. Otherwise every try gets its own deadline: a request to a stream
// whose leader has died is never answered, and must not wait out a caller's
// long deadline.
func retryEach(ctx context.Context, attempt time.Duration, op func(ctx context.Context) error) error {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= attempt {
		if err := op(ctx); err == nil || !transient(err) {
			return err
		}
	} else {
		tctx, tcancel := context.WithTimeout(ctx, attempt)
		err := op(tctx)
		tcancel()
		if err == nil || !transient(err) && !(errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil) {
			return err
		}
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	for {
		tctx, tcancel := context.WithTimeout(ctx, attempt)
		err := op(tctx)
		tcancel()
		if err == nil || !transient(err) && !(errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil) {
			return err
		}
		t := time.NewTimer(retryEvery)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}
