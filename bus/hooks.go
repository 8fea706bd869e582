package bus

import (
	"context"

	"github.com/nats-io/nats.go"
)

// hooks let a test of this package stall or lose parts of the bus's reads,
// as a server under load does, on one Bus (Bus.hooks, nil otherwise). Each is
// optional.
type hooks struct {
	// directReply is called with the sequence of each answer readSeqs takes.
	directReply func(seq uint64)
	// lose reports whether readFiltered loses message m, a message or a
	// status its consumer sent (as a client that stopped waiting would).
	lose func(m *nats.Msg) bool
	// deleteConsumer is called before a consumer readFiltered made is
	// deleted, with its name.
	deleteConsumer func(name string)
	// request is called before each try of a request made with Bus.request;
	// an error from it is that try's.
	request func(ctx context.Context, subject string) error
	// streamNames is called before the bus lists the streams to count the
	// partitions.
	streamNames func()
}
