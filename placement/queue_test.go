package placement

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/meter"
)

func TestAdaptiveQueueThenFail(t *testing.T) {
	c := newClock()
	p, v := newTestPolicy(c, nodeSpec{name: "n1", cores: 4, res: map[string]meter.ResourceState{"sms": rate(0, 2, 0.5)}})
	req := Request{Builtin: "sms.send", Coordinator: "n1", Demands: []meter.Demand{{Resource: "sms", Amount: 1}}}
	since := c.Now()
	_, q, err := p.TryPlace(req, since)
	if err != nil || q == nil || q.Resource != "sms" || q.Retry != 2*time.Second {
		t.Fatalf("want a 2s wait for sms (0.5/s), got %+v, %v", q, err)
	}
	c.Advance(q.Retry)
	d, q, err := p.TryPlace(req, since)
	if err != nil || q != nil || d.Node != "n1" || d.Waited != 2*time.Second || !strings.Contains(d.Reason, "waited 2s") {
		t.Fatalf("after the refill: %+v %+v %v", d, q, err)
	}
	// The token is reserved: the next step waits again, and fails after MaxWait.
	since = c.Now()
	if _, q, _ = p.TryPlace(req, since); q == nil {
		t.Fatal("the reservation should hold the refilled token")
	}
	c.Advance(10 * time.Second)
	v.Put(rd(c, nodeSpec{name: "n1", cores: 4, res: map[string]meter.ResourceState{"sms": rate(0, 2, 0)}})) // the rate dropped to zero
	_, q, err = p.TryPlace(req, since)
	var ne *NoNodeError
	if q != nil || !errors.Is(err, ErrNoNode) || !errors.As(err, &ne) || ne.Resource != "sms" || ne.Waited != 10*time.Second ||
		!strings.Contains(err.Error(), "exhausted on all 1 nodes that have it") {
		t.Fatalf("after the max wait: %+v, %v", q, err)
	}
}

func TestAdaptivePlaceWaits(t *testing.T) {
	v := NewMemView(0, nil)
	empty := map[string]meter.ResourceState{"db": {Kind: meter.KindPool, Scope: meter.ScopeNode, Free: 0, Capacity: 1}}
	v.Put(meter.Reading{Node: "n1", Cores: 2, Resources: empty})
	p := NewAdaptive(v, Options{Retry: time.Hour})
	req := Request{Builtin: "sql.query", Coordinator: "n1", Demands: []meter.Demand{{Resource: "db", Amount: 1}}}
	done := make(chan error)
	go func() {
		d, err := p.Place(context.Background(), req)
		if err == nil && (d.Node != "n1" || !strings.HasSuffix(d.Reason, " for db")) {
			err = fmt.Errorf("placed on %s: %s", d.Node, d.Reason)
		}
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for p.Waiting()["db"] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the waiting step is not visible in Waiting")
		}
		runtime.Gosched()
	}
	free := map[string]meter.ResourceState{"db": {Kind: meter.KindPool, Scope: meter.ScopeNode, Free: 1, Capacity: 1}}
	v.Put(meter.Reading{Node: "n1", Cores: 2, Resources: free}) // wakes the waiter long before Retry
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(p.Waiting()) != 0 {
		t.Fatalf("queue after: %v", p.Waiting())
	}

	// Cancelled while waiting: the error names the resource and wraps both causes.
	v.Put(meter.Reading{Node: "n1", Cores: 2, Resources: empty})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Place(ctx, req)
	if !errors.Is(err, ErrNoNode) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "db") {
		t.Fatalf("cancelled wait: %v", err)
	}
	// Bounded by MaxWait.
	short := NewAdaptive(v, Options{MaxWait: time.Millisecond})
	if _, err := short.Place(context.Background(), req); !errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), "max wait") {
		t.Fatalf("past the max wait: %v", err)
	}
}
