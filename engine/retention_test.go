package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/replay"
)

// TestRetentionAndPin: journals expire through the stream's own MaxAge; a
// pinned run (and its script version) stays exportable and replayable.
func TestRetentionAndPin(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs), JournalMaxAge: 2 * time.Second})
	kept := runScript(t, n, "def main(input):\n    return test.echo('kept')\n", "")
	gone := runScript(t, n, "def main(input):\n    return test.echo('gone')\n", "")
	ctx := context.Background()
	rec, err := n.Pin(ctx, kept.ID)
	if err != nil || !rec.Pinned {
		t.Fatalf("pin: %v %+v", err, rec)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := n.Export(ctx, gone.ID)
		if errors.Is(err, api.ErrUnknownRun) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unpinned run never expired: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval: expiry is the server's timer
	}
	if _, err := n.bus.Read(ctx, "drover.journal."+kept.ID+".>"); err != nil {
		t.Fatal(err)
	}
	exp, err := n.Export(ctx, kept.ID)
	if err != nil {
		t.Fatalf("pinned run after retention: %v", err)
	}
	rep, err := replay.Replay(ctx, exp, replay.Options{Registry: testRegistry(&execs)})
	if err != nil || !rep.Matches || string(rep.Result) != `"kept"` {
		t.Fatalf("replay of pinned run: %v %+v", err, rep)
	}
	d, err := n.Get(ctx, kept.ID)
	if err != nil || !d.Pinned || d.Expires != nil || len(d.Steps) != 1 || string(d.Result) != `"kept"` {
		t.Fatalf("show of pinned run after retention: %v %+v", err, d)
	}
	if _, err := n.Get(ctx, gone.ID); !errors.Is(err, api.ErrUnknownRun) {
		t.Fatalf("expired run: %v", err)
	}
}
