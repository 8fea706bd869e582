package bus

// hooks let a test of this package stall or lose parts of the bus's reads,
// as a server under load does, on one Bus (Bus.hooks, nil otherwise). Each is
// optional.
type hooks struct {
	// directReply is called with the sequence of each answer readSeqs takes.
	directReply func(seq uint64)
}
