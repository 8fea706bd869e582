// Package bustest gives tests of the packages above bus a real bus: an
// embedded NATS server with JetStream in the test's temporary directory, as
// nats-server's own tests run one (test.RunServer), closed when the test ends.
package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/droverhq/drover/bus"
)

// Open starts an embedded bus for t with opts (Name defaults to "t",
// DataDir to a temporary directory) and closes it when t ends.
func Open(t testing.TB, opts bus.Options) *bus.Bus {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "t"
	}
	if opts.DataDir == "" && opts.URL == "" {
		opts.DataDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// PollUntil calls cond until it holds, failing t if it does not within 10 s.
func PollUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
