package placement

import (
	"testing"
	"time"

	"github.com/droverhq/drover/meter"
)

func TestMemView(t *testing.T) {
	c := newClock()
	v := NewMemView(3*time.Second, c.Now)
	ch := v.Changed()
	v.Put(meter.Reading{Node: "b"})
	select {
	case <-ch:
	default:
		t.Fatal("Put must signal Changed")
	}
	c.Advance(2 * time.Second)
	v.Put(meter.Reading{Node: "a"})
	if n := v.Nodes(); len(n) != 2 || n[0].Node != "a" || n[1].Node != "b" || !n[0].Seen.Equal(c.Now()) {
		t.Fatalf("nodes: %+v", n)
	}
	c.Advance(time.Second) // b expires
	if n := v.Nodes(); len(n) != 1 || n[0].Node != "a" {
		t.Fatalf("after b's TTL: %+v", n)
	}
	v.Delete("a")
	if n := v.Nodes(); len(n) != 0 {
		t.Fatalf("after delete: %+v", n)
	}
}
